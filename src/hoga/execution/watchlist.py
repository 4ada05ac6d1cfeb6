"""The watchlist service: read and replace a user's 관심종목 (validated, at most 100)."""

from __future__ import annotations

from hoga.domain import krx
from hoga.domain.clock import Clock
from hoga.domain.errors import InvalidInput
from hoga.marketdata.universe import Universe
from hoga.store.db import Actor, Database
from hoga.store.repos import watchlist as repo

MAX_SYMBOLS = 100


class WatchlistService:
    """``get`` returns the user's symbols in order; ``replace`` validates the whole new list
    (codes well formed and listed, at most ``MAX_SYMBOLS``; duplicates keep their first place)
    and stores it in one transaction - a refused list changes nothing."""

    def __init__(self, db: Database, universe: Universe, clock: Clock) -> None:
        self.db = db
        self.universe = universe
        self.clock = clock

    async def get(self, user_id: int) -> list[str]:
        async with self.db.tx(Actor.user(user_id)) as conn:
            return await repo.symbols(conn, user_id)

    async def replace(self, user_id: int, symbols: list[str]) -> list[str]:
        if len(symbols) > MAX_SYMBOLS:
            raise InvalidInput(
                f"관심종목은 {MAX_SYMBOLS}개까지입니다 (at most {MAX_SYMBOLS} symbols)",
                "watchlist.too_many",
                field="symbols",
            )
        clean: list[str] = []
        for raw in symbols:
            code = raw.strip().upper()
            if not krx.is_valid_symbol(code):
                raise InvalidInput(
                    f"종목코드 형식이 올바르지 않습니다 (malformed symbol): {raw[:12]!r}",
                    "watchlist.bad_symbol",
                    field="symbols",
                )
            if code not in self.universe:
                raise InvalidInput(
                    f"알 수 없는 종목입니다 (unknown symbol): {code}",
                    "watchlist.unknown_symbol",
                    field="symbols",
                )
            if code not in clean:
                clean.append(code)
        async with self.db.tx(Actor.user(user_id)) as conn:
            await repo.replace(conn, user_id, clean, self.clock.now())
        return clean
