"""Answers about people and their settings: sign-in, the caller's own account (``/api/me``),
linked broker accounts, notification channels, the watchlist, and the admin's user and tier
pages (``api/views.py`` writes the user, tier and audit shapes)."""

from __future__ import annotations

from typing import Any

from hoga.api.schemas import Answer


class TokenPairView(Answer):
    """A sign-in or a refresh: the bearer token and the refresh token that renews it."""

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class TierView(Answer):
    name: str
    daily_trades: int
    max_strategies: int
    max_positions: int
    priority: str
    api_calls_per_minute: int


class UserView(Answer):
    """A user as an admin sees it; ``limits`` (the tier's) only where the caller asked."""

    id: int
    username: str
    tier: str
    is_admin: bool
    is_active: bool
    totp_enabled: bool
    ip_allowlist: list[str]
    trading_state: str
    max_order_value: int | None
    daily_loss_limit: int | None
    created_at: str
    limits: TierView | None = None


class UserList(Answer):
    users: list[UserView]
    max_users: int


class TierList(Answer):
    tiers: list[TierView]


class TodayCounters(Answer):
    trades: int
    realized_pnl: int


class MeView(UserView):
    """``GET /api/me``: the caller, the tier's limits, today's counters."""

    today: TodayCounters
    recovery_codes_left: int


class TotpEnrolment(Answer):
    secret: str
    otpauth_uri: str
    #: An SVG ``data:`` URI of the QR code.
    qr_svg: str


class TotpState(Answer):
    enabled: bool
    #: Shown once, when TOTP is switched on.
    recovery_codes: list[str] | None = None


class Allowlist(Answer):
    entries: list[str]


class SessionView(Answer):
    id: str
    current: bool
    created_at: str
    expires_at: str
    ip: str | None
    user_agent: str | None


class SessionList(Answer):
    sessions: list[SessionView]


class AuditView(Answer):
    id: int
    user_id: int | None
    actor_id: int | None
    ts: str
    action: str
    target: str | None
    ip: str | None
    detail: dict[str, Any]


class AuditList(Answer):
    entries: list[AuditView]


class LastTest(Answer):
    at: str
    ok: bool | None
    message: str | None


class BrokerAccountView(Answer):
    """A linked account, masked (``api/views.py`` ``account_view``): never a secret."""

    id: int
    broker: str
    env: str
    label: str | None
    account_no: str
    app_key: str | None
    app_secret: str | None
    #: A decimal, as text (``"0.00015"``).
    commission_rate: str
    base_url: str | None
    cash: int | None
    last_test: LastTest | None
    created_at: str


class BrokerAccountList(Answer):
    accounts: list[BrokerAccountView]


class AccountTest(Answer):
    """The result of a connection test; ``opening`` the books adopted on a real account's
    first successful test."""

    ok: bool
    message: str
    code: str | None
    opening: dict[str, Any] | None = None


class ChannelView(Answer):
    id: int
    kind: str
    label: str
    target_masked: str
    events: list[str]
    enabled: bool
    last_error: str | None
    last_sent_at: str | None


class ChannelList(Answer):
    channels: list[ChannelView]
    available_events: list[str]


class Queued(Answer):
    queued: bool


class Watchlist(Answer):
    symbols: list[str]
