"""Notification channel rows (``notification_channels``) and what a channel may be.

A channel is an apprise URL - it carries bot tokens, webhook secrets or SMTP passwords - kept
as a vault envelope whose associated data names the user and the row, like broker
credentials; only a masked form (scheme and, for webhooks and e-mail, the host) ever leaves.
Every function takes the acting user's id and filters by it (the table is a tenant table with
row-level security on PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hoga.security.vault import channel_aad
from hoga.store import tables as t

__all__ = ["channel_aad"]

#: Channel kinds and the apprise URL schemes each accepts.
KIND_SCHEMES: Final[dict[str, tuple[str, ...]]] = {
    "webhook": ("json", "jsons", "form", "forms", "xml", "xmls"),
    "telegram": ("tgram",),
    "discord": ("discord",),
    "slack": ("slack",),
    "email": ("mailto", "mailtos"),
}
#: Events a user can subscribe a channel to.
USER_EVENTS: Final = (
    "fill",
    "rejection",
    "unknown_settled",
    "strategy_error",
    "kill_switch",
    "broker_down",
    "daily_summary",
)
#: Server-wide alerts (feed down, reconciliation mismatch, disk nearly full, backup failed):
#: admins only.
ADMIN_EVENTS: Final = ("admin_alert",)
MAX_CHANNELS: Final = 10
MAX_URL: Final = 2000


def mask_url(kind: str, url: str) -> str:
    """What may be shown of a channel URL: its scheme, and the host for webhooks and e-mail
    (where the host is a server, not a token)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if kind in ("webhook", "email"):
        try:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            host, port = "", ""
        return f"{scheme}://{host}{port}/****" if host else f"{scheme}://****"
    return f"{scheme}://****"


@dataclass(frozen=True)
class Channel:
    """One stored channel (the URL stays an envelope until delivery decrypts it)."""

    id: int
    user_id: int
    kind: str
    label: str
    target_masked: str
    url_enc: str
    events: list[str]
    enabled: bool
    last_error: str | None
    last_sent_at: datetime | None

    @staticmethod
    def of(r: Row[Any]) -> Channel:
        return Channel(
            r.id,
            r.user_id,
            r.kind,
            r.label,
            r.target_masked,
            r.url_enc,
            list(r.events or []),
            bool(r.enabled),
            r.last_error,
            r.last_sent_at,
        )


async def list_channels(conn: AsyncConnection, user_id: int) -> list[Channel]:
    c = t.notification_channels.c
    rows = await conn.execute(
        select(t.notification_channels).where(c.user_id == user_id).order_by(c.id)
    )
    return [Channel.of(r) for r in rows]


async def get_channel(conn: AsyncConnection, user_id: int, channel_id: int) -> Channel | None:
    c = t.notification_channels.c
    row = (
        await conn.execute(
            select(t.notification_channels).where(c.user_id == user_id, c.id == channel_id)
        )
    ).first()
    return Channel.of(row) if row else None


async def insert_channel(
    conn: AsyncConnection,
    user_id: int,
    *,
    kind: str,
    label: str,
    target_masked: str,
    key_id: str,
    events: list[str],
    enabled: bool,
    now: datetime,
) -> int:
    """A new row with an empty envelope (the caller encrypts under the new id, same tx)."""
    result = await conn.execute(
        t.notification_channels.insert().values(
            user_id=user_id,
            kind=kind,
            label=label,
            target_masked=target_masked,
            url_enc="",
            key_id=key_id,
            events=events,
            enabled=enabled,
            created_at=now,
            updated_at=now,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


async def update_channel(
    conn: AsyncConnection, user_id: int, channel_id: int, **values: Any
) -> None:
    c = t.notification_channels.c
    await conn.execute(
        t.notification_channels.update()
        .where(c.user_id == user_id, c.id == channel_id)
        .values(**values)
    )


async def delete_channel(conn: AsyncConnection, user_id: int, channel_id: int) -> bool:
    c = t.notification_channels.c
    result = await conn.execute(
        t.notification_channels.delete().where(c.user_id == user_id, c.id == channel_id)
    )
    return bool(result.rowcount)


async def admin_channels(conn: AsyncConnection) -> list[Channel]:
    """Enabled channels of active admins (SYSTEM actor): where server-wide alerts go."""
    c = t.notification_channels.c
    rows = await conn.execute(
        select(t.notification_channels)
        .join(t.users, t.users.c.id == c.user_id)
        .where(t.users.c.is_admin.is_(True), t.users.c.is_active.is_(True), c.enabled.is_(True))
        .order_by(c.id)
    )
    return [ch for ch in (Channel.of(r) for r in rows) if "admin_alert" in ch.events]


async def users_with_event(conn: AsyncConnection, event: str) -> list[int]:
    """Users with an enabled channel for ``event`` (SYSTEM actor; daily summary, kill switch)."""
    c = t.notification_channels.c
    rows = await conn.execute(select(c.user_id, c.events).where(c.enabled.is_(True)))
    return sorted({int(r.user_id) for r in rows if event in (r.events or [])})
