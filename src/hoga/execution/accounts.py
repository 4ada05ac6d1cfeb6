"""Broker accounts: linking them (credentials into the vault), listing them masked, and handing
adapters an ``AccountRef`` with the secrets decrypted - the only place plaintext exists.

Every user gets a paper account, funded with ``paper_initial_cash``, when they are created.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hoga.brokers.base import AccountRef, Broker, BrokerError
from hoga.domain.clock import Clock
from hoga.domain.errors import Conflict, NotFound, ServiceUnavailable
from hoga.domain.secret import Secret, mask
from hoga.execution.account_linking import LinkRequest, check_link
from hoga.execution.opening_books import adopt_opening_books
from hoga.security import keystate
from hoga.security.brokerurls import BrokerUrlPolicy
from hoga.security.vault import Vault, VaultError, account_aad
from hoga.store.db import SYSTEM, Actor, Database
from hoga.store.repos import accounts as repo
from hoga.store.repos import audit, ledger
from hoga.store.repos import orders as orders_repo
from hoga.store.repos.accounts import AccountRecord
from hoga.store.repos.users import UserRecord

log = logging.getLogger(__name__)

BROKERS = ("paper", "kis", "kiwoom", "kiwoom_openapi")


class AccountService:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        clock: Clock,
        brokers: dict[str, Broker],
        *,
        paper_cash: int,
        commission_rate: Decimal,
        url_policy: BrokerUrlPolicy | None = None,
    ) -> None:
        self._db = db
        self._vault = vault
        self._clock = clock
        self.brokers = brokers
        self.paper_cash = paper_cash
        self.commission_rate = commission_rate
        self.url_policy = url_policy or BrokerUrlPolicy()
        self._refs: dict[int, AccountRef] = {}
        self._resolved: dict[tuple[int, int | None], AccountRecord] = {}
        #: False while the server runs paused: accounts linked meanwhile open no broker
        #: session until ``attach_all`` on resume (the server sets it; see app.py).
        self.attaching = True
        #: Cluster mode: only the users this server owns get broker sessions here.
        self.owns: Callable[[int], bool] | None = None

    # --- creation

    async def create_paper_account(self, user: UserRecord) -> AccountRecord:
        now = self._clock.now()
        async with self._db.tx(Actor.user(user.id)) as conn:
            existing = await repo.paper_account(conn, user.id)
            if existing is not None:
                return existing
            acct = await repo.create_account(
                conn,
                user.id,
                broker="paper",
                env="paper",
                label="모의투자 (paper)",
                account_masked=f"PAPER-{user.id:04d}",
                fingerprint=f"paper:{user.id}",
                commission_rate=self.commission_rate,
                now=now,
            )
            await ledger.post_cash(
                conn, user.id, acct.id, self.paper_cash, "deposit", now, note="initial paper cash"
            )
        await self._attach(acct)
        return acct

    async def link(self, user_id: int, req: LinkRequest, *, ip: str | None) -> AccountRecord:
        broker, env, account_no, rate = check_link(req, self.url_policy, self.commission_rate)
        now = self._clock.now()
        secrets_doc = {
            "account_no": account_no,
            "app_key": req.app_key.strip(),
            "app_secret": req.app_secret.strip(),
            "hts_id": req.hts_id or "",
        }
        digits = account_no.replace("-", "")
        async with self._db.tx(Actor.user(user_id)) as conn:
            # The key the database names current (a rotation may have switched it).
            await keystate.use_current(self._vault, conn, now)
            acct = await repo.create_account(
                conn,
                user_id,
                broker=broker,
                env=env,
                label=(req.label or f"{broker.upper()} {'실전' if env == 'real' else '모의'}")[:64],
                account_masked=mask(digits),
                app_key_masked=mask(req.app_key.strip()),
                fingerprint=self._vault.fingerprint(str(user_id), broker, env, digits),
                commission_rate=rate,
                now=now,
                base_url=req.base_url,
                ws_url=req.ws_url,
                key_id=self._vault.current_key_id,
            )
            envelope = self._vault.encrypt_json(
                secrets_doc, account_aad(user_id, acct.id, broker, env)
            )
            await repo.update_account(conn, user_id, acct.id, secrets_enc=envelope)
            await audit.record(
                conn,
                action="account.link",
                now=now,
                user_id=user_id,
                ip=ip,
                target=f"account:{acct.id}",
                detail={"broker": broker, "env": env, "account": acct.account_masked},
            )
            acct = await repo.require_account(conn, user_id, acct.id)
        self._forget(user_id)
        await self._attach(acct)
        return acct

    # --- reading

    async def list_accounts(self, user_id: int) -> list[tuple[AccountRecord, int]]:
        async with self._db.tx(Actor.user(user_id)) as conn:
            accts = await repo.list_accounts(conn, user_id)
            return [(a, await ledger.cash(conn, user_id, a.id)) for a in accts]

    async def get(self, user_id: int, account_id: int) -> AccountRecord:
        async with self._db.tx(Actor.user(user_id)) as conn:
            return await repo.require_account(conn, user_id, account_id)

    async def default_account(self, user_id: int) -> AccountRecord:
        async with self._db.tx(Actor.user(user_id)) as conn:
            acct = await repo.paper_account(conn, user_id)
            if acct is None:
                accts = await repo.list_accounts(conn, user_id)
                acct = accts[0] if accts else None
        if acct is None:
            raise NotFound("계좌가 없습니다 (no account)", "account.not_found")
        return acct

    async def resolve(self, user_id: int, account_id: int | None) -> AccountRecord:
        """The account an order goes to (the paper account when none is named), cached: the
        order path asks for it on every submit and accounts rarely change."""
        key = (user_id, account_id)
        acct = self._resolved.get(key)
        if acct is None:
            acct = await (
                self.default_account(user_id)
                if account_id is None
                else self.get(user_id, account_id)
            )
            self._resolved[key] = acct
        return acct

    def _forget(self, user_id: int) -> None:
        for key in [k for k in self._resolved if k[0] == user_id]:
            del self._resolved[key]

    def ref(self, acct: AccountRecord) -> AccountRef:
        """The adapter's view of an account, secrets decrypted (cached per account)."""
        cached = self._refs.get(acct.id)
        if cached is not None:
            return cached
        doc: dict[str, str] = {}
        if acct.secrets_enc:
            try:
                doc = self._vault.decrypt_json(
                    acct.secrets_enc, account_aad(acct.user_id, acct.id, acct.broker, acct.env)
                )
            except VaultError as e:
                raise ServiceUnavailable(
                    f"계좌 {acct.id}의 자격 증명을 열 수 없습니다: {e}", "vault.decrypt_failed"
                ) from None
        ref = AccountRef(
            account_id=acct.id,
            user_id=acct.user_id,
            broker=acct.broker,
            env=acct.env,
            account_no=doc.get("account_no", acct.account_masked),
            app_key=Secret(doc["app_key"]) if doc.get("app_key") else None,
            app_secret=Secret(doc["app_secret"]) if doc.get("app_secret") else None,
            hts_id=doc.get("hts_id") or None,
            base_url=self._permitted(acct, acct.base_url),
            ws_url=self._permitted(acct, acct.ws_url),
            commission_rate=acct.commission_rate,
        )
        self._refs[acct.id] = ref
        return ref

    def _permitted(self, acct: AccountRecord, url: str | None) -> str | None:
        """A stored custom URL the operator no longer allows is not called: the broker's own
        hosts are used instead (said in the log)."""
        if self.url_policy.permits(url):
            return url
        log.warning(
            "account %s: its custom broker URL is not allowed (HOGA_ALLOW_CUSTOM_BROKER_URLS / "
            "HOGA_BROKER_URL_HOSTS); using the broker's own hosts",
            acct.id,
        )
        return None

    async def ref_for(self, user_id: int, account_id: int) -> AccountRef:
        cached = self._refs.get(account_id)
        if cached is not None and cached.user_id == user_id:
            return cached
        return self.ref(await self.get(user_id, account_id))

    def broker_for(self, broker: str) -> Broker:
        b = self.brokers.get(broker)
        if b is None:
            raise ServiceUnavailable(
                f"{broker} 어댑터가 이 서버에 없습니다 (adapter not available)",
                "broker.unavailable",
            )
        return b

    def forget_credentials(self) -> None:
        """Drop the decrypted credentials (after a vault rotation re-encrypted them)."""
        self._refs.clear()

    # --- lifecycle

    async def _attach(self, acct: AccountRecord) -> None:
        broker = self.brokers.get(acct.broker)
        if broker is None or not self.attaching:
            return
        if self.owns is not None and not self.owns(acct.user_id):
            return  # cluster mode: the user's owner opens its sessions
        try:
            await broker.attach(self.ref(acct))
        except BrokerError as e:
            log.warning("could not attach account %s to %s: %s", acct.id, acct.broker, e.code)

    async def attach_all(self) -> list[AccountRecord]:
        self.attaching = True
        async with self._db.tx(SYSTEM) as conn:
            accts = await repo.all_active_accounts(conn)
        for acct in accts:
            await self._attach(acct)
        return accts

    async def user_accounts(self, user_id: int) -> list[AccountRecord]:
        """The user's active accounts (cluster mode: what an owner attaches and detaches)."""
        async with self._db.tx(Actor.user(user_id)) as conn:
            return [a for a in await repo.list_accounts(conn, user_id) if a.is_active]

    async def attach_account(self, acct: AccountRecord) -> None:
        """Open one account's broker session (cluster mode: its user's owner changed)."""
        await self._attach(acct)

    async def detach_account(self, acct: AccountRecord) -> None:
        """Close one account's broker session (cluster mode: another server owns it now)."""
        broker = self.brokers.get(acct.broker)
        if broker is None:
            return
        try:
            await broker.detach(acct.id)
        except BrokerError as e:
            log.warning("could not detach account %s from %s: %s", acct.id, acct.broker, e.code)

    async def test(self, user_id: int, account_id: int, *, ip: str | None) -> dict[str, Any]:
        acct = await self.get(user_id, account_id)
        broker = self.broker_for(acct.broker)
        ok, message, code = True, "", None
        opening: dict[str, Any] | None = None
        try:
            message = await broker.test_connection(self.ref(acct))
            if not acct.is_paper:
                opening = await adopt_opening_books(
                    self._db, self._clock, acct, broker, self.ref(acct)
                )
        except BrokerError as e:
            ok, message, code = False, e.message, e.code
        now = self._clock.now()
        async with self._db.tx(Actor.user(user_id)) as conn:
            await repo.update_account(
                conn,
                user_id,
                account_id,
                last_test_at=now,
                last_test_ok=ok,
                last_test_message=message[:255],
            )
            await audit.record(
                conn,
                action="account.test",
                now=now,
                user_id=user_id,
                ip=ip,
                target=f"account:{account_id}",
                detail={"ok": ok, "code": code},
            )
        result: dict[str, Any] = {"ok": ok, "message": message, "code": code}
        if opening is not None:
            result["opening"] = opening
        return result

    async def remove(self, user_id: int, account_id: int, *, ip: str | None) -> None:
        acct = await self.get(user_id, account_id)
        if acct.is_paper:
            raise Conflict(
                "모의투자 계좌는 삭제할 수 없습니다 (the paper account stays)",
                "account.paper_is_permanent",
            )
        async with self._db.tx(Actor.user(user_id)) as conn:
            if await orders_repo.open_orders(conn, user_id=user_id, account_id=account_id):
                raise Conflict(
                    "미체결 주문이 있는 계좌는 삭제할 수 없습니다 (account has open orders)",
                    "account.has_open_orders",
                )
            await repo.update_account(
                conn,
                user_id,
                account_id,
                is_active=False,
                secrets_enc=None,
                updated_at=self._clock.now(),
            )
            await audit.record(
                conn,
                action="account.remove",
                now=self._clock.now(),
                user_id=user_id,
                ip=ip,
                target=f"account:{account_id}",
            )
        self._refs.pop(account_id, None)
        self._forget(user_id)
        broker = self.brokers.get(acct.broker)
        if broker is not None:
            await broker.detach(account_id)
