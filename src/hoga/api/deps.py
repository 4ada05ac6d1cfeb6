"""Request dependencies: the app, the caller's address, authentication, the API budget."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Protocol

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from hoga.domain.errors import Forbidden, LimitExceeded, Unauthorized
from hoga.execution.ratelimit import SlidingWindow
from hoga.security.auth_core import AuthContext
from hoga.security.proxies import client_address, parse_networks

if TYPE_CHECKING:
    from hoga.app import HogaApp


def get_hoga(request: HTTPConnection) -> HogaApp:
    hoga: HogaApp = request.app.state.hoga
    return hoga


def client_ip(request: HTTPConnection) -> str | None:
    """The caller's address: the TCP peer, or - behind a proxy named in
    ``HOGA_TRUSTED_PROXIES`` - the rightmost untrusted ``X-Forwarded-For`` entry."""
    trusted = getattr(request.app.state, "trusted_proxies", None)
    if trusted is None:
        trusted = request.app.state.trusted_proxies = parse_networks(
            get_hoga(request).settings.trusted_proxies
        )
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers, trusted)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("로그인이 필요합니다 (missing bearer token)", "auth.missing_token")
    return token.strip()


class Budget(Protocol):
    """The per-user API budget: ``check`` returns, or raises ``LimitExceeded`` (429 with
    Retry-After) for a call beyond ``per_minute`` in any minute. ``ApiBudget`` counts in this
    process; cluster mode counts across servers (``hoga.cluster.limits.SharedApiBudget``)."""

    async def check(self, user_id: int, per_minute: int, now: float) -> None: ...


class ApiBudget:
    """Per-user request budget (calls per minute), in this process's memory (``Budget``)."""

    def __init__(self) -> None:
        self._windows: dict[int, SlidingWindow] = {}

    async def check(self, user_id: int, per_minute: int, now: float) -> None:
        w = self._windows.get(user_id)
        if w is None or w.limit != per_minute:
            w = self._windows[user_id] = SlidingWindow(max(1, per_minute), 60.0)
        if not w.try_acquire(now):
            raise budget_exceeded(per_minute, w.available_at(now) - now)


def budget_exceeded(per_minute: int, retry: float) -> LimitExceeded:
    return LimitExceeded(
        f"API 호출 한도(분당 {per_minute}회)를 넘었습니다. {int(retry) + 1}초 후 다시 시도하세요 "
        "(API budget exceeded)",
        "rate_limited",
        retry_after=retry,
    )


async def current_user(request: Request) -> AuthContext:
    hoga = get_hoga(request)
    ctx = await hoga.auth.authenticate(bearer_token(request), client_ip(request))
    per_minute = ctx.user.api_calls_per_minute or ctx.tier.api_calls_per_minute
    budget: Budget = request.app.state.api_budget
    await budget.check(ctx.user_id, per_minute, hoga.clock.monotonic())
    request.state.user_id = ctx.user_id
    return ctx


async def admin_user(ctx: Annotated[AuthContext, Depends(current_user)]) -> AuthContext:
    if not ctx.user.is_admin:
        raise Forbidden("관리자만 할 수 있습니다 (admins only)", "auth.admin_only")
    return ctx


User = Annotated[AuthContext, Depends(current_user)]
Admin = Annotated[AuthContext, Depends(admin_user)]
