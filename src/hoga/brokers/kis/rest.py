"""The KIS REST client for one app key: tokens, pacing, error mapping and paging.

One ``KisRest`` exists per (environment, host, app key) however many accounts share the key,
so the key has one access token and one pacer (kis.md §2.1, §7).

Tokens are issued lazily, reused from the ``TokenStore`` across restarts (issuing again is
throttled - EGW00133 - and notifies the user by KakaoTalk), renewed when less than
``renew_before`` seconds remain, and re-issued once when the gateway calls one expired or
invalid (EGW00123/EGW00121).

Errors are classified by ``rt_cd``/``msg_cd`` whatever the HTTP status (§6). For *commands*
(orders) the classification is what the order pipeline relies on: ``BrokerNotProcessed`` only
when the request certainly did not take effect (EGW00201, refused connection, token trouble
before sending), ``BrokerRejected`` for a business refusal, ``BrokerOutcomeUnknown`` for
timeouts, dropped connections, 5xx without a KIS body and unreadable replies.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from hoga.brokers.base import (
    BrokerAuthError,
    BrokerError,
    BrokerNotProcessed,
    BrokerOutcomeUnknown,
    BrokerRejected,
    TokenStore,
)
from hoga.brokers.kis import wire
from hoga.brokers.kis.limiter import KeyPacer, PacerBusy
from hoga.domain.clock import Clock
from hoga.domain.secret import Secret

log = logging.getLogger(__name__)

TOKEN_KIND = "kis.access"  # noqa: S105 - a name, not a secret
MAX_PAGES = 100


def key_id(env: str, base_url: str, app_key: Secret, app_secret: Secret) -> str:
    """A short, non-reversible name for an app key (safe in logs and session ids).

    The secret is part of the identity: an account linked with the right key but a wrong
    secret must fail on its own credentials, never ride on another account's token.
    """
    material = f"{env}|{base_url}|{app_key.reveal()}|{app_secret.reveal()}"
    return hashlib.sha256(material.encode()).hexdigest()[:10]


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful KIS answer: response headers (lower-case names) and the JSON body."""

    headers: Mapping[str, str]
    data: dict[str, Any]


class KisRest:
    """REST calls for one app key; see the module docstring."""

    def __init__(
        self,
        *,
        env: str,
        base_url: str,
        app_key: Secret,
        app_secret: Secret,
        http: httpx.AsyncClient,
        pacer: KeyPacer,
        clock: Clock,
        store: TokenStore,
        renew_before: float = 600.0,
        command_wait: float = 3.0,
    ) -> None:
        self.env = env
        self.command_wait = command_wait
        self.base_url = base_url.rstrip("/")
        self._app_key = app_key
        self._app_secret = app_secret
        self._http = http
        self.pacer = pacer
        self._clock = clock
        self._store = store
        self.renew_before = renew_before
        self.id = key_id(env, self.base_url, app_key, app_secret)
        self.account_ids: set[int] = set()
        self._token: tuple[Secret, float] | None = None
        self._token_lock = asyncio.Lock()
        self.tokens_issued = 0
        self.tokens_reused = 0
        self.rate_limited = 0

    # ------------------------------------------------------------------ tokens

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
                        self.tokens_reused += 1
                        return stored[0]
            token, expires_at = await self._issue()
            self._token = (Secret(token), expires_at)
            for account_id in sorted(self.account_ids):
                await self._store.save(account_id, TOKEN_KIND, token, expires_at)
            return token

    async def _issue(self) -> tuple[str, float]:
        body = {
            "grant_type": "client_credentials",
            "appkey": self._app_key.reveal(),
            "appsecret": self._app_secret.reveal(),
        }
        data = await self._auth_post(wire.TOKEN_PATH, body, "access token")
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise BrokerAuthError("KIS 토큰 응답에 access_token이 없습니다", "kis.bad_token_reply")
        expires_in = wire.to_int(data.get("expires_in"), 86400)
        self.tokens_issued += 1
        log.info("KIS access token issued for key %s (valid %ds)", self.id, expires_in)
        return token, self._clock.time() + expires_in

    async def approval_key(self) -> str:
        """The WebSocket approval key (§2.2; note ``secretkey``, not ``appsecret``)."""
        body = {
            "grant_type": "client_credentials",
            "appkey": self._app_key.reveal(),
            "secretkey": self._app_secret.reveal(),
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
                resp = await self._http.post(
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
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BrokerNotProcessed(
                f"KIS {what} 응답을 해석할 수 없습니다 (HTTP {resp.status_code})",
                "kis.bad_reply",
                retry_after=5.0,
            )
        if resp.status_code == 200 and "error_code" not in data:
            return data
        code = str(data.get("error_code") or data.get("msg_cd") or f"kis.http_{resp.status_code}")
        desc = str(data.get("error_description") or data.get("msg1") or "")
        if code == wire.TOKEN_THROTTLED:
            raise BrokerNotProcessed(
                f"KIS {code}: {desc} - 토큰 재발급은 잠시 후에 가능합니다 (token re-issue throttled)",
                code,
                retry_after=60.0,
            )
        if code in (wire.BAD_APP_KEY, wire.BAD_APP_SECRET):
            raise BrokerAuthError(
                f"KIS {code}: {desc} - 앱키/앱시크릿과 실전·모의 환경이 맞는지 확인하세요 "
                "(app key/secret refused; check them and the real/mock setting)",
                code,
            )
        raise BrokerAuthError(f"KIS {code}: {desc or 'token request refused'}", code)

    # ------------------------------------------------------------------ calls

    def _headers(self, token: str, tr_id: str, tr_cont: str) -> dict[str, str]:
        return {
            "content-type": "application/json; charset=utf-8",
            "authorization": f"Bearer {token}",
            "appkey": self._app_key.reveal(),
            "appsecret": self._app_secret.reveal(),
            "tr_id": tr_id,
            "custtype": "P",
            "tr_cont": tr_cont,
        }

    async def request(
        self,
        method: str,
        path: str,
        tr_id: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, str] | None = None,
        tr_cont: str = "",
        command: bool = False,
    ) -> Reply:
        """One call. ``command`` marks requests that change state at the broker (orders)."""
        try:
            token = await self.access_token()
        except BrokerAuthError as e:
            if command:
                # The order never left: refusing credentials is a definite "no".
                raise BrokerRejected(e.message, e.code) from None
            raise
        reissued = False
        throttled = 0
        while True:
            try:
                async with self.pacer.slot(self.command_wait if command else None):
                    resp = await self._http.request(
                        method,
                        self.base_url + path,
                        params=params,
                        content=None if body is None else json.dumps(body),
                        headers=self._headers(token, tr_id, tr_cont),
                    )
            except PacerBusy as e:
                # Still queued behind this key's other calls: nothing was sent. Handing the
                # order back beats letting the submit time out into a false UNKNOWN.
                raise BrokerNotProcessed(
                    f"KIS 요청 대기열이 가득합니다 ({e.waited:.1f}초 대기; request queue busy)",
                    "kis.busy",
                    retry_after=1.0,
                ) from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                # Nothing reached the broker.
                if command:
                    raise BrokerNotProcessed(
                        f"KIS 서버에 연결할 수 없습니다 ({type(e).__name__})",
                        "kis.unreachable",
                        retry_after=5.0,
                    ) from None
                raise BrokerError(
                    f"KIS 서버에 연결할 수 없습니다 ({type(e).__name__})", "kis.unreachable"
                ) from None
            except httpx.HTTPError as e:
                cls = BrokerOutcomeUnknown if command else BrokerError
                raise cls(
                    f"KIS 응답을 받지 못했습니다 ({type(e).__name__}); 주문 상태를 대조합니다"
                    if command
                    else f"KIS 응답을 받지 못했습니다 ({type(e).__name__})",
                    "kis.no_answer",
                ) from None
            data = _json(resp)
            if data is None:
                raise self._unreadable(resp, command)
            msg_cd = str(data.get("msg_cd") or "")
            msg1 = str(data.get("msg1") or "").strip()
            rt_cd = data.get("rt_cd")
            if msg_cd in (wire.TOKEN_EXPIRED, wire.TOKEN_INVALID):
                if not reissued:
                    reissued = True
                    log.info("KIS %s for key %s; issuing a new token once", msg_cd, self.id)
                    try:
                        token = await self.access_token(stale=token)
                    except BrokerAuthError as e:
                        if command:
                            raise BrokerRejected(e.message, e.code) from None
                        raise
                    continue
                err = f"KIS {msg_cd}: {msg1} (새 토큰도 거부됨; token refused twice)"
                if command:
                    raise BrokerRejected(err, msg_cd)
                raise BrokerAuthError(err, msg_cd)
            if msg_cd == wire.RATE_LIMITED:
                if not command and throttled < 2:
                    # A query is safe to repeat; back off and ask again.
                    throttled += 1
                    self.rate_limited += 1
                    await asyncio.sleep(0.5 * throttled)
                    continue
                self.rate_limited += 1
                raise BrokerNotProcessed(f"KIS {msg_cd}: {msg1}", msg_cd, retry_after=1.0)
            if str(rt_cd) == "0":
                return Reply({k.lower(): v for k, v in resp.headers.items()}, data)
            if rt_cd is None and not msg_cd:
                raise self._unreadable(resp, command)
            raise BrokerRejected(
                f"KIS {msg_cd or 'rt_cd=' + str(rt_cd)}: {msg1 or 'refused'}",
                msg_cd or f"kis.rt_cd_{rt_cd}",
            )

    @staticmethod
    def _unreadable(resp: httpx.Response, command: bool) -> BrokerError:
        status = resp.status_code
        what = f"HTTP {status}, {len(resp.content)} bytes"
        if status == 429:
            return BrokerNotProcessed(f"KIS 요청 제한 ({what})", "kis.http_429", retry_after=1.0)
        if command and 400 <= status < 500:
            # A gateway that answers 4xx did not take the request in.
            return BrokerRejected(f"KIS 요청이 거부되었습니다 ({what})", f"kis.http_{status}")
        if command:
            return BrokerOutcomeUnknown(
                f"KIS 응답을 해석할 수 없습니다 ({what}); 주문 상태를 대조합니다",
                "kis.bad_reply",
            )
        return BrokerError(f"KIS 응답을 해석할 수 없습니다 ({what})", "kis.bad_reply")

    async def pages(self, path: str, tr_id: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every page of a paged inquiry (§5.4): bodies in order."""
        bodies: list[dict[str, Any]] = []
        fk = nk = ""
        tr_cont = ""
        for _ in range(MAX_PAGES):
            reply = await self.request(
                "GET",
                path,
                tr_id,
                params={**params, "CTX_AREA_FK100": fk, "CTX_AREA_NK100": nk},
                tr_cont=tr_cont,
            )
            bodies.append(reply.data)
            if reply.headers.get("tr_cont", "").strip() not in ("F", "M"):
                return bodies
            fk = str(reply.data.get("ctx_area_fk100") or "")
            nk = str(reply.data.get("ctx_area_nk100") or "")
            tr_cont = "N"
        raise BrokerError(
            f"KIS 조회가 {MAX_PAGES}쪽을 넘습니다 (too many pages)", "kis.too_many_pages"
        )


def _json(resp: httpx.Response) -> dict[str, Any] | None:
    try:
        data = resp.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
