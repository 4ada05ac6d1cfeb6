"""One access token per app key, shared by everything in the process that uses the key.

Kiwoom invalidates a key's previous token when it issues a new one (observed, kiwoom.md A3), so
two callers issuing "their own" tokens would log each other out. ``TokenKeeper`` is the single
owner: issuance is single-flight under a lock, the token is renewed ``renew_margin`` seconds
before its ``expires_dt``, it is saved through the ``TokenStore`` under every account that uses
the key (so a restart reuses it instead of issuing, and logging out nothing), and a refused
token is dropped only if it is still the current one (a concurrent caller may already have
replaced it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hoga.brokers.base import TokenStore
from hoga.domain.clock import Clock
from hoga.domain.secret import Secret

log = logging.getLogger(__name__)

TOKEN_KIND = "access"  # noqa: S105 - the name of a token kind, not a secret
Issuer = Callable[[], Awaitable[tuple[str, float]]]


class TokenKeeper:
    """Holds the current token of one app key; see the module docstring."""

    def __init__(
        self,
        issue: Issuer,
        store: TokenStore,
        clock: Clock,
        *,
        renew_margin: float = 600.0,
        label: str = "kiwoom",
    ) -> None:
        self._issue = issue
        self._store = store
        self._clock = clock
        self.renew_margin = renew_margin
        self._label = label
        self._token: Secret | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._loaded: set[int] = set()
        self.account_ids: set[int] = set()
        self.issued = 0
        self.reused = 0

    def _fresh(self) -> bool:
        return self._token is not None and self._clock.time() < self._expires_at - self.renew_margin

    @property
    def expires_at(self) -> float:
        return self._expires_at

    async def get(self) -> Secret:
        """A token valid for at least ``renew_margin`` more seconds (issued if need be)."""
        if self._fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            if self._fresh():
                assert self._token is not None
                return self._token
            await self._load_stored()
            if self._fresh():
                assert self._token is not None
                self.reused += 1
                log.info("%s: reusing the stored access token", self._label)
                return self._token
            token, expires_at = await self._issue()
            self._token, self._expires_at = Secret(token), expires_at
            self.issued += 1
            log.info("%s: issued a new access token", self._label)
            for account_id in sorted(self.account_ids):
                try:
                    await self._store.save(account_id, TOKEN_KIND, token, expires_at)
                except Exception as e:  # a store failure must not cost us the token
                    log.warning(
                        "%s: could not persist the token for account %s (%s)",
                        self._label,
                        account_id,
                        type(e).__name__,
                    )
            return self._token

    async def _load_stored(self) -> None:
        for account_id in sorted(self.account_ids - self._loaded):
            self._loaded.add(account_id)
            try:
                got = await self._store.load(account_id, TOKEN_KIND)
            except Exception as e:
                log.warning(
                    "%s: could not read the stored token of account %s (%s)",
                    self._label,
                    account_id,
                    type(e).__name__,
                )
                continue
            if got is not None and got[1] > self._expires_at:
                self._token, self._expires_at = Secret(got[0]), got[1]

    def invalidate(self, token: Secret) -> None:
        """The broker refused ``token``: forget it, unless it was already replaced."""
        if self._token is not None and self._token == token:
            self._token = None
            self._expires_at = 0.0

    def adopt(self, account_id: int) -> None:
        """Another account uses this key; its stored token is considered on the next issue."""
        self.account_ids.add(account_id)
