"""The tokens of one KIS app key: the access token and the WebSocket approval key.

Tokens are issued lazily, reused from the ``TokenStore`` across restarts (issuing again is
throttled - EGW00133 - and notifies the user by KakaoTalk), renewed when less than
``renew_before`` seconds remain, and re-issued once when the gateway calls one expired or
invalid (EGW00123/EGW00121; the client asks with ``stale``). Token calls pass the key's pacer
like every other call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from hoga.brokers.base import BrokerAuthError, BrokerNotProcessed, TokenStore
from hoga.brokers.kis import errors, wire
from hoga.brokers.pacing import Pacer
from hoga.domain.clock import Clock
from hoga.domain.secret import Secret

log = logging.getLogger(__name__)

TOKEN_KIND = "kis.access"  # noqa: S105 - a name, not a secret


class KisTokens:
    """The access token of one app key (single-flight under a lock) and its approval keys."""

    def __init__(
        self,
        *,
        key_id: str,
        base_url: str,
        app_key: Secret,
        app_secret: Secret,
        http: httpx.AsyncClient,
        pacer: Pacer,
        clock: Clock,
        store: TokenStore,
        renew_before: float = 600.0,
    ) -> None:
        self.id = key_id
        self.base_url = base_url
        self.app_key = app_key
        self.app_secret = app_secret
        self.http = http
        self.pacer = pacer
        self._clock = clock
        self._store = store
        self.renew_before = renew_before
        self.account_ids: set[int] = set()
        self._token: tuple[Secret, float] | None = None
        self._token_lock = asyncio.Lock()
        self.issued = 0
        self.reused = 0

    def _fresh(self, token: tuple[Secret, float] | tuple[str, float] | None) -> bool:
        return token is not None and token[1] - self._clock.time() > self.renew_before

    async def access_token(self, *, stale: str | None = None) -> str:
        """A valid access token; ``stale`` names one the gateway refused (re-issue once)."""
        async with self._token_lock:
            if stale is not None and self._token is not None and self._token[0].reveal() == stale:
                self._token = None
            if self._fresh(self._token):
                assert self._token is not None
                return self._token[0].reveal()
            if stale is None:
                for account_id in sorted(self.account_ids):
                    stored = await self._store.load(account_id, TOKEN_KIND)
                    if self._fresh(stored):
                        assert stored is not None
                        # Wrapping registers the value with the log masker, too.
                        self._token = (Secret(stored[0]), stored[1])
                        self.reused += 1
                        return stored[0]
            token, expires_at = await self._issue()
            self._token = (Secret(token), expires_at)
            for account_id in sorted(self.account_ids):
                await self._store.save(account_id, TOKEN_KIND, token, expires_at)
            return token

    async def _issue(self) -> tuple[str, float]:
        body = {
            "grant_type": "client_credentials",
            "appkey": self.app_key.reveal(),
            "appsecret": self.app_secret.reveal(),
        }
        data = await self._auth_post(wire.TOKEN_PATH, body, "access token")
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise BrokerAuthError("KIS 토큰 응답에 access_token이 없습니다", "kis.bad_token_reply")
        expires_in = wire.to_int(data.get("expires_in"), 86400)
        self.issued += 1
        log.info("KIS access token issued for key %s (valid %ds)", self.id, expires_in)
        return token, self._clock.time() + expires_in

    async def approval_key(self) -> str:
        """The WebSocket approval key (§2.2; note ``secretkey``, not ``appsecret``)."""
        body = {
            "grant_type": "client_credentials",
            "appkey": self.app_key.reveal(),
            "secretkey": self.app_secret.reveal(),
        }
        data = await self._auth_post(wire.APPROVAL_PATH, body, "approval key")
        key = data.get("approval_key")
        if not isinstance(key, str) or not key:
            raise BrokerAuthError(
                "KIS 승인키 응답에 approval_key가 없습니다", "kis.bad_token_reply"
            )
        return key

    async def _auth_post(self, path: str, body: dict[str, str], what: str) -> dict[str, Any]:
        try:
            async with self.pacer.slot():
                resp = await self.http.post(
                    self.base_url + path,
                    json=body,
                    headers={"content-type": "application/json; charset=utf-8"},
                )
        except httpx.HTTPError as e:
            raise BrokerNotProcessed(
                f"KIS {what} 발급 요청이 실패했습니다 ({type(e).__name__})",
                "kis.unreachable",
                retry_after=5.0,
            ) from None
        data = errors.json_body(resp)
        if data is None:
            raise BrokerNotProcessed(
                f"KIS {what} 응답을 해석할 수 없습니다 (HTTP {resp.status_code})",
                "kis.bad_reply",
                retry_after=5.0,
            )
        if resp.status_code == 200 and "error_code" not in data:
            return data
        raise errors.token_refusal(resp.status_code, data)
