"""The KIS REST client for one app key: calls, paging, and the retries a call may make.

One ``KisClient`` exists per (environment, host, app key) however many accounts share the key,
so the key has one access token (``tokens.KisTokens``) and one pacer (``brokers.pacing``;
kis.md §2.1, §7); ``KisKeys`` keeps one ``KisKey`` (client and WebSocket) per key. Answers
become results or broker errors in ``errors``; here a call re-issues a refused token once and
repeats a rate-limited *query* (never a command) twice.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from hoga.brokers.base import AccountRef, BrokerAuthError, BrokerError, BrokerRejected, TokenStore
from hoga.brokers.kis import errors, wire
from hoga.brokers.kis.realtime import KisSocket
from hoga.brokers.kis.tokens import KisTokens
from hoga.brokers.pacing import Pacer, PacerBusy
from hoga.domain.clock import Clock
from hoga.domain.secret import Secret

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class KisOptions:
    """How every app key of the adapter paces, waits and reconnects.

    ``real_rate``/``mock_rate``: requests per second of one key on that domain (``Pacer``,
    ``pacer_margin`` seconds of slack); ``timeout``: an HTTP answer, seconds;
    ``renew_before``: renew a token this many seconds before it expires; ``ws_backoff_max``:
    the longest wait between socket reconnects; ``command_wait``: how long an order or cancel
    may wait for a request slot.
    """

    real_rate: float = 18.0
    mock_rate: float = 1.0
    timeout: float = 8.0
    pacer_margin: float = 0.01
    renew_before: float = 600.0
    ws_backoff_max: float = 30.0
    command_wait: float = 3.0

    def rate(self, env: str) -> float:
        """Requests per second of one key on ``env`` (real, or the mock domain)."""
        return self.real_rate if env == "real" else self.mock_rate


class KisClient:
    """REST calls for one app key; see the module docstring."""

    def __init__(self, tokens: KisTokens, *, env: str, command_wait: float = 3.0) -> None:
        self.tokens = tokens
        self.env = env
        self.command_wait = command_wait
        self.base_url = tokens.base_url
        self._app_key = tokens.app_key
        self._app_secret = tokens.app_secret
        self._http = tokens.http
        self.pacer = tokens.pacer
        self.id = tokens.id
        self.rate_limited = 0

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
            token = await self.tokens.access_token()
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
                raise errors.busy(e.waited) from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                raise errors.unreachable(e, command) from None
            except httpx.HTTPError as e:
                raise errors.no_answer(e, command) from None
            data = errors.json_body(resp)
            if data is None:
                raise errors.unreadable(resp, command)
            msg_cd = str(data.get("msg_cd") or "")
            msg1 = str(data.get("msg1") or "").strip()
            rt_cd = data.get("rt_cd")
            if msg_cd in (wire.TOKEN_EXPIRED, wire.TOKEN_INVALID):
                if not reissued:
                    reissued = True
                    log.info("KIS %s for key %s; issuing a new token once", msg_cd, self.id)
                    try:
                        token = await self.tokens.access_token(stale=token)
                    except BrokerAuthError as e:
                        if command:
                            raise BrokerRejected(e.message, e.code) from None
                        raise
                    continue
                raise errors.token_refused_twice(msg_cd, msg1, command)
            if msg_cd == wire.RATE_LIMITED:
                if not command and throttled < 2:
                    # A query is safe to repeat; back off and ask again.
                    throttled += 1
                    self.rate_limited += 1
                    await asyncio.sleep(0.5 * throttled)
                    continue
                self.rate_limited += 1
                raise errors.rate_limited(msg_cd, msg1)
            if str(rt_cd) == "0":
                return Reply({k.lower(): v for k, v in resp.headers.items()}, data)
            if rt_cd is None and not msg_cd:
                raise errors.unreadable(resp, command)
            raise errors.refusal(rt_cd, msg_cd, msg1)

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


@dataclass
class KisKey:
    """One app key: its REST client, its realtime session and the accounts using it."""

    id: str
    env: str
    client: KisClient
    socket: KisSocket
    accounts: dict[int, AccountRef]


class KisKeys:
    """The app keys of every attached account, one ``KisKey`` each, over one HTTP pool.

    A key is created when an account first needs it and closed when its last account
    detaches; ``on_notice`` receives the execution-notice records of its socket.
    """

    def __init__(
        self,
        clock: Clock,
        store: TokenStore,
        *,
        options: KisOptions,
        transport: httpx.AsyncBaseTransport | None,
        on_notice: Callable[[KisKey, list[str]], None],
    ) -> None:
        self._clock = clock
        self._store = store
        self.options = options
        self._transport = transport
        self._on_notice = on_notice
        self._http: httpx.AsyncClient | None = None
        self._keys: dict[str, KisKey] = {}
        self._account_key: dict[int, KisKey] = {}

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            o = self.options
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(o.timeout, connect=min(5.0, o.timeout)),
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    def all(self) -> list[KisKey]:
        return list(self._keys.values())

    def of(self, account_id: int) -> KisKey | None:
        return self._account_key.get(account_id)

    def key(self, account: AccountRef) -> KisKey:
        """The key serving ``account`` (created on first use)."""
        known = self._account_key.get(account.account_id)
        if known is not None:
            return known
        if account.app_key is None or account.app_secret is None:
            raise BrokerRejected(
                "KIS 계좌에 앱키/앱시크릿이 없습니다 (app key and secret are required)",
                "kis.no_credentials",
            )
        env = "real" if account.env == "real" else "mock"
        base = (account.base_url or wire.REST_HOSTS[env]).rstrip("/")
        kid = key_id(env, base, account.app_key, account.app_secret)
        key = self._keys.get(kid)
        if key is None:
            o = self.options
            tokens = KisTokens(
                key_id=kid,
                base_url=base,
                app_key=account.app_key,
                app_secret=account.app_secret,
                http=self.http(),
                pacer=Pacer(o.rate(env), 1.0, o.pacer_margin),
                clock=self._clock,
                store=self._store,
                renew_before=o.renew_before,
            )
            client = KisClient(tokens, env=env, command_wait=o.command_wait)
            socket = KisSocket(
                kid,
                account.ws_url or wire.WS_HOSTS[env],
                client.tokens.approval_key,
                backoff_max=o.ws_backoff_max,
            )
            key = KisKey(kid, env, client, socket, {})
            socket.listeners[wire.NOTICE_TR[env]] = functools.partial(self._on_notice, key)
            self._keys[kid] = key
        key.accounts[account.account_id] = account
        key.client.tokens.account_ids.add(account.account_id)
        self._account_key[account.account_id] = key
        return key

    async def detach(self, account_id: int) -> None:
        """The account is gone: stop its notices, and close its key if it was the last."""
        key = self._account_key.pop(account_id, None)
        if key is None:
            return
        ref = key.accounts.pop(account_id, None)
        key.client.tokens.account_ids.discard(account_id)
        if (
            ref is not None
            and ref.hts_id
            and not any(a.hts_id == ref.hts_id for a in key.accounts.values())
        ):
            await key.socket.unregister(wire.NOTICE_TR[key.env], ref.hts_id)
        if not key.accounts:
            await key.socket.close()
            self._keys.pop(key.id, None)

    async def close(self) -> None:
        for key in list(self._keys.values()):
            await key.socket.close()
        self._keys.clear()
        self._account_key.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
