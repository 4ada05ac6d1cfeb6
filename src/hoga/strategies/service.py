"""The strategy service: what the API does with a user's strategies.

Contract:

* **Limits.** A user has at most their tier's ``max_strategies`` strategies, and at most that
  many running (the tier may have been lowered since they were created).
* **Validation.** ``create`` checks the kind against the catalog, the symbols against the
  universe and the strategy's own bounds, and the params against its pydantic model; a strategy
  is recorded whole or not at all (status ``created``), with an audit entry.
* **Lifecycle.** ``created`` -> ``running`` (start) -> ``paused`` (pause: orders stay working)
  or ``stopped`` (stop: the strategy's open orders are cancelled) -> ``running`` again;
  ``error`` when the strategy raised. Every change is stored, audited and published to the
  user's event stream as ``{"type": "strategy", "strategy": view}``; running instances belong
  to the live driver (``live.py``). ``delete`` stops it, cancels its orders and removes it.
"""

from __future__ import annotations

from typing import Any

from hoga.domain import krx
from hoga.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from hoga.marketdata.universe import Universe
from hoga.security.auth import AuthService
from hoga.store.db import Actor
from hoga.store.repos import accounts as accounts_repo
from hoga.store.repos import audit
from hoga.store.repos import strategies as repo
from hoga.strategies.base import Strategy
from hoga.strategies.live import LiveDriver
from hoga.strategies.pnl import strategy_view
from hoga.strategies.records import StrategyRecords
from hoga.strategies.registry import Catalog


class StrategyService:
    """Creates, lists, starts, stops, pauses and deletes strategies; see the module docstring."""

    def __init__(
        self,
        records: StrategyRecords,
        live: LiveDriver,
        auth: AuthService,
        universe: Universe,
        catalog: Catalog,
    ) -> None:
        self._records = records
        self._live = live
        self._auth = auth
        self._universe = universe
        self.catalog = catalog

    def _validate_symbols(self, cls: type[Strategy[Any]], symbols: Any) -> list[str]:
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise InvalidInput(
                "symbols는 종목코드 목록이어야 합니다 (symbols must be a list of codes)",
                "strategy.unknown_symbol",
                field="symbols",
            )
        out = list(dict.fromkeys(krx.normalize_symbol(s) for s in symbols))
        bad = [s for s in out if not krx.is_valid_symbol(s) or s not in self._universe]
        if bad:
            raise InvalidInput(
                f"알 수 없는 종목입니다: {', '.join(bad[:10])} (unknown symbols)",
                "strategy.unknown_symbol",
                field="symbols",
                symbols=bad[:50],
            )
        if not cls.min_symbols <= len(out) <= cls.max_symbols:
            raise InvalidInput(
                f"{cls.kind} 전략은 종목 {cls.min_symbols}~{cls.max_symbols}개를 받습니다 "
                f"(takes {cls.min_symbols} to {cls.max_symbols} symbols, got {len(out)})",
                "strategy.bad_symbols",
                field="symbols",
            )
        return out

    async def create(
        self,
        user_id: int,
        *,
        name: str,
        kind: str,
        symbols: Any,
        params: Any,
        account_id: int | None = None,
        ip: str | None = None,
    ) -> dict[str, Any]:
        """Validate and record a new strategy (status ``created``); nothing is half-created."""
        cls = self.catalog.get(kind)
        codes = self._validate_symbols(cls, symbols)
        validated = self.catalog.params(kind, params if params is not None else {}, tuple(codes))
        name = name.strip()
        if not name:
            raise InvalidInput(
                "이름이 필요합니다 (name required)", "strategy.bad_name", field="name"
            )
        user = await self._auth.user(user_id)
        tier = await self._auth.tier(user.tier)
        now = self._records.clock.now()
        async with (
            self._records.lock(user_id),
            self._records.db.tx(Actor.user(user_id)) as conn,
        ):
            if account_id is None:
                acct = await accounts_repo.paper_account(conn, user_id)
                if acct is None:
                    raise NotFound("계좌가 없습니다 (no account)", "account.not_found")
            else:
                acct = await accounts_repo.require_account(conn, user_id, account_id)
            count = await repo.count_for_user(conn, user_id)
            if count >= tier.max_strategies:
                raise Forbidden(
                    f"{tier.name} 등급은 전략을 {tier.max_strategies}개까지 만들 수 있습니다 "
                    f"(your tier allows {tier.max_strategies} strategies)",
                    "strategy.limit_reached",
                    limit=tier.max_strategies,
                )
            rec = await repo.create(
                conn,
                user_id=user_id,
                account_id=acct.id,
                name=name,
                kind=cls.kind,
                symbols=codes,
                params=validated.model_dump(mode="json"),
                now=now,
            )
            await audit.record(
                conn,
                action="strategy.create",
                now=now,
                user_id=user_id,
                ip=ip,
                target=f"strategy:{rec.id}",
                detail={"kind": rec.kind, "symbols": codes},
            )
        return await self._records.announce(rec)

    async def get(self, user_id: int, strategy_id: int) -> dict[str, Any]:
        return await self._records.view(await self._records.get(user_id, strategy_id))

    async def list_strategies(self, user_id: int) -> list[dict[str, Any]]:
        async with self._records.db.tx(Actor.user(user_id)) as conn:
            recs = await repo.list_for_user(conn, user_id)
            counts = await repo.order_counts(conn, user_id)
            fills = {r.id: await repo.fills(conn, user_id, r.id) for r in recs}
        price_of = self._records.price_of
        return [strategy_view(r, fills[r.id], counts.get(r.id, 0), price_of) for r in recs]

    async def start_strategy(
        self, user_id: int, strategy_id: int, *, ip: str | None = None
    ) -> dict[str, Any]:
        async with self._records.lock(user_id):
            rec = await self._records.get(user_id, strategy_id)
            if self._live.is_running(rec.id):
                return await self._records.view(rec)
            if self._live.suspended:
                raise Conflict(
                    "서버가 일시정지되어 전략을 시작할 수 없습니다. 관리자가 재개한 뒤 시작하세요 "
                    "(the server is paused: strategies start after an admin resumes it)",
                    "server.paused",
                )
            self.catalog.get(rec.kind)
            user = await self._auth.user(user_id)
            tier = await self._auth.tier(user.tier)
            if self._live.running_for(user_id) >= tier.max_strategies:
                raise Forbidden(
                    f"{tier.name} 등급은 전략을 {tier.max_strategies}개까지 실행할 수 있습니다 "
                    f"(your tier runs at most {tier.max_strategies} strategies)",
                    "strategy.limit_reached",
                    limit=tier.max_strategies,
                )
            rec = await self._records.update(
                rec,
                status="running",
                last_error=None,
                error_at=None,
                audit_action="strategy.start",
                ip=ip,
            )
            if not self._live.remote(user_id):  # else the owner starts it from the database
                await self._live.launch(rec)
            rec = await self._records.get(user_id, strategy_id)
        return await self._records.announce(rec)

    async def stop_strategy(
        self, user_id: int, strategy_id: int, *, ip: str | None = None
    ) -> dict[str, Any]:
        return await self._park(user_id, strategy_id, "stopped", ip)

    async def pause(
        self, user_id: int, strategy_id: int, *, ip: str | None = None
    ) -> dict[str, Any]:
        return await self._park(user_id, strategy_id, "paused", ip)

    async def _park(
        self, user_id: int, strategy_id: int, status: str, ip: str | None
    ) -> dict[str, Any]:
        async with self._records.lock(user_id):
            rec = await self._records.get(user_id, strategy_id)
            halted = await self._live.halt(rec.id, "stop" if status == "stopped" else "pause")
            if not halted and status == "stopped":
                await self._live.cancel_open(rec)
            if rec.status != status:
                keep_error = rec.status == "error"
                rec = await self._records.update(
                    rec,
                    status=status,
                    audit_action=f"strategy.{'stop' if status == 'stopped' else 'pause'}",
                    ip=ip,
                    **({} if keep_error else {"last_error": None, "error_at": None}),
                )
                self._live.remote(user_id)  # the owner halts its run
        return await self._records.announce(rec)

    async def delete(self, user_id: int, strategy_id: int, *, ip: str | None = None) -> None:
        async with self._records.lock(user_id):
            rec = await self._records.get(user_id, strategy_id)
            if not await self._live.halt(rec.id, "stop"):
                await self._live.cancel_open(rec)
            now = self._records.clock.now()
            async with self._records.db.tx(Actor.user(user_id)) as conn:
                await repo.remove(conn, user_id, rec.id)
                await audit.record(
                    conn,
                    action="strategy.delete",
                    now=now,
                    user_id=user_id,
                    ip=ip,
                    target=f"strategy:{rec.id}",
                    detail={"kind": rec.kind, "name": rec.name},
                )
            self._live.remote(user_id)  # the owner halts the run it still has
        self._records.bus.publish(
            user_id, {"type": "strategy_deleted", "strategy_id": rec.id, "name": rec.name}
        )
