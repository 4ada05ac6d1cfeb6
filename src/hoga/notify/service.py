"""The notifier: channels (API operations), events into messages (``messages.py``),
asynchronous delivery.

* **Never on the order path.** ``on_event`` is an ``EventBus`` hook: it only turns a fill,
  a rejection, an order settled after UNKNOWN or a strategy error into a short message and
  puts it on a bounded queue (``put_nowait``; when full the message is dropped and counted,
  never waited for). Everything else - reading the user's channels, decrypting their URLs,
  talking to Telegram or an SMTP server - happens in the notifier's own worker task.
* **Delivery.** Each (message, channel) is sent by apprise in a worker thread (apprise's
  plugins do blocking HTTP/SMTP; the threads touch no database handle), at most
  ``parallel`` at once, each attempt bounded by ``timeout``; a failed attempt is retried after
  each delay of ``retries`` (back-off), then recorded on the channel (``last_error``).
* **Channel URLs** are vault envelopes (``store.channel_aad``); only masked forms leave, and
  neither URLs nor apprise's own log lines (which can quote tokens) reach the server log:
  apprise's logger is silenced and failures are logged by channel id and kind.
* **Admin alerts** (``admin_alert``) go to the enabled channels of active admins that
  subscribe to ``admin_alert``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import apprise
from sqlalchemy import select

from hoga.domain.clock import Clock
from hoga.domain.errors import Conflict, InvalidInput, NotFound
from hoga.notify import store
from hoga.notify.messages import EventMessages, Message
from hoga.notify.store import (
    ADMIN_EVENTS,
    KIND_SCHEMES,
    MAX_CHANNELS,
    MAX_URL,
    USER_EVENTS,
    Channel,
)
from hoga.security import keystate
from hoga.security.vault import Vault, VaultError
from hoga.store import tables as t
from hoga.store.db import SYSTEM, Actor, Database
from hoga.tasks import cancel_and_wait

log = logging.getLogger(__name__)
# apprise logs the URLs it loads and the answers it gets (bot tokens, webhook secrets): keep
# all of it out of the server log; failures are logged here without the URL.
logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)
# urllib3 (under apprise's requests) logs each request line at DEBUG - webhook paths are secrets.
logging.getLogger("urllib3").setLevel(logging.WARNING)


def _send_apprise(url: str, title: str, body: str) -> bool:
    """One delivery attempt (worker thread)."""
    a = apprise.Apprise()
    if not a.add(url):
        return False
    return bool(a.notify(body=body, title=title))


class Notifier:
    """See the module docstring."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        clock: Clock,
        *,
        queue_size: int = 1000,
        retries: Iterable[float] = (2.0, 10.0, 60.0),
        timeout: float = 20.0,
        parallel: int = 4,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self._db = db
        self._vault = vault
        self._clock = clock
        self._queue: asyncio.Queue[Message] = asyncio.Queue(queue_size)
        self.retries = tuple(retries)
        self.timeout = timeout
        self._parallel = asyncio.Semaphore(parallel)
        self._on_result = on_result or (lambda _kind, _result: None)
        self._messages = EventMessages()
        self._worker: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.Task[None]] = set()
        self.dropped = 0
        self.sent = 0
        self.failed = 0
        self.send = _send_apprise

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        # Orders still UNKNOWN from before a restart: their settling is news too.
        try:
            async with self._db.tx(SYSTEM) as conn:
                rows = await conn.execute(
                    select(t.orders.c.id).where(t.orders.c.status == "UNKNOWN")
                )
                self._messages.unknown.update(int(r[0]) for r in rows)
        except Exception as e:
            log.warning("notifications: reading UNKNOWN orders failed (%s)", type(e).__name__)
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="notifier")

    async def stop(self) -> None:
        await cancel_and_wait(
            (t for t in (self._worker, *self._deliveries) if t is not None), swallow_errors=True
        )
        self._worker = None

    def pending(self) -> int:
        return self._queue.qsize() + len(self._deliveries)

    # ------------------------------------------------------------------ producers

    def enqueue(self, message: Message) -> bool:
        """Queue a message without waiting; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            self._on_result("-", "dropped")
            return False
        return True

    def admin_alert(self, event: str, title: str, body: str) -> None:
        self.enqueue(Message(None, "admin_alert", title, f"{body} [{event}]"))

    def notify_user(self, user_id: int, event: str, title: str, body: str) -> None:
        self.enqueue(Message(user_id, event, title, body))

    def on_event(self, user_id: int, event: dict[str, Any]) -> None:
        """``EventBus`` hook: synchronous and cheap (see the module docstring)."""
        try:
            message = self._messages.translate(user_id, event)
        except Exception:  # a malformed event must never hurt the publisher
            log.exception("notification for a %s event failed", event.get("type"))
            return
        if message is not None:
            self.enqueue(message)

    # ------------------------------------------------------------------ delivery

    async def _run(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                channels = await self._channels_for(message)
            except Exception as e:
                log.warning(
                    "notifications: reading channels failed (%s); message dropped", type(e).__name__
                )
                self.dropped += 1
                continue
            for channel in channels:
                await self._parallel.acquire()
                task = asyncio.get_running_loop().create_task(self._deliver(channel, message))
                self._deliveries.add(task)
                task.add_done_callback(self._delivered)

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        self._parallel.release()

    async def _channels_for(self, m: Message) -> list[Channel]:
        if m.user_id is None:
            async with self._db.tx(SYSTEM) as conn:
                return await store.admin_channels(conn)
        async with self._db.tx(Actor.user(m.user_id)) as conn:
            if m.channel_id is not None:
                one = await store.get_channel(conn, m.user_id, m.channel_id)
                return [one] if one else []
            return [
                c
                for c in await store.list_channels(conn, m.user_id)
                if c.enabled and m.event in c.events
            ]

    async def _deliver(self, channel: Channel, m: Message) -> None:
        try:
            url = self._vault.decrypt(
                channel.url_enc, store.channel_aad(channel.user_id, channel.id)
            ).decode()
        except VaultError:
            log.warning("notification channel %s does not decrypt; skipped", channel.id)
            await self._record(channel, ok=False, error="vault: the channel URL does not decrypt")
            return
        delays = (*self.retries, None)
        error = ""
        for delay in delays:
            try:
                ok = await asyncio.wait_for(
                    asyncio.to_thread(self.send, url, m.title, m.body), self.timeout
                )
                error = "" if ok else "the service did not accept the message"
            except TimeoutError:
                ok, error = False, f"no answer within {self.timeout:g} s"
            except Exception as e:
                ok, error = False, type(e).__name__
            if ok:
                self.sent += 1
                self._on_result(channel.kind, "sent")
                await self._record(channel, ok=True)
                return
            if delay is not None:
                await asyncio.sleep(delay)
        self.failed += 1
        self._on_result(channel.kind, "failed")
        log.warning(
            "notification %s to channel %s (%s) failed after %d attempts: %s",
            m.event,
            channel.id,
            channel.kind,
            len(delays),
            error,
        )
        await self._record(channel, ok=False, error=error)

    async def _record(self, channel: Channel, *, ok: bool, error: str = "") -> None:
        values: dict[str, Any] = (
            {"last_sent_at": self._clock.now(), "last_error": None}
            if ok
            else {"last_error": error[:255]}
        )
        try:
            async with self._db.tx(Actor.user(channel.user_id)) as conn:
                await store.update_channel(conn, channel.user_id, channel.id, **values)
        except Exception as e:
            log.debug("recording a delivery on channel %s failed: %s", channel.id, type(e).__name__)

    # ------------------------------------------------------------------ API operations

    @staticmethod
    def available_events(is_admin: bool) -> list[str]:
        return [*USER_EVENTS, *(ADMIN_EVENTS if is_admin else ())]

    def _check(
        self, kind: str | None, url: str | None, events: list[str] | None, is_admin: bool
    ) -> None:
        if kind is not None and kind not in KIND_SCHEMES:
            raise InvalidInput(
                f"알 수 없는 채널 종류입니다 (unknown channel kind): {kind}",
                "notify.bad_kind",
                field="kind",
            )
        if url is not None:
            assert kind is not None
            scheme = url.split("://", 1)[0].lower() if "://" in url else ""
            if (
                len(url) > MAX_URL
                or scheme not in KIND_SCHEMES[kind]
                or not apprise.Apprise().add(url)
            ):
                # The schemes stay outside the parentheses: the Korean half needs them too.
                schemes = ", ".join(s + "://" for s in KIND_SCHEMES[kind])
                raise InvalidInput(
                    f"{kind} 채널 URL이 올바르지 않습니다. {schemes} 형식으로 쓰세요 "
                    f"(not a valid {kind} URL; expected {schemes})",
                    "notify.invalid_url",
                    field="url",
                )
        if events is not None:
            allowed = set(self.available_events(is_admin))
            bad = [e for e in events if e not in allowed]
            if bad:
                raise InvalidInput(
                    f"알 수 없는 이벤트입니다 (unknown events): {', '.join(bad)}",
                    "notify.bad_event",
                    field="events",
                )

    async def channels(self, user_id: int) -> list[Channel]:
        async with self._db.tx(Actor.user(user_id)) as conn:
            return await store.list_channels(conn, user_id)

    async def create(
        self,
        user_id: int,
        *,
        is_admin: bool,
        kind: str,
        label: str,
        url: str,
        events: list[str],
        enabled: bool,
    ) -> Channel:
        self._check(kind, url, events, is_admin)
        now = self._clock.now()
        async with self._db.tx(Actor.user(user_id)) as conn:
            if len(await store.list_channels(conn, user_id)) >= MAX_CHANNELS:
                raise Conflict(
                    f"알림 채널은 {MAX_CHANNELS}개까지입니다 (at most {MAX_CHANNELS} channels)",
                    "notify.too_many",
                )
            await keystate.use_current(self._vault, conn, now)
            cid = await store.insert_channel(
                conn,
                user_id,
                kind=kind,
                label=label,
                target_masked=store.mask_url(kind, url),
                key_id=self._vault.current_key_id,
                events=list(dict.fromkeys(events)),
                enabled=enabled,
                now=now,
            )
            await store.update_channel(
                conn,
                user_id,
                cid,
                url_enc=self._vault.encrypt(url.encode(), store.channel_aad(user_id, cid)),
            )
            channel = await store.get_channel(conn, user_id, cid)
        assert channel is not None
        return channel

    async def update(
        self,
        user_id: int,
        channel_id: int,
        *,
        is_admin: bool,
        label: str | None = None,
        url: str | None = None,
        events: list[str] | None = None,
        enabled: bool | None = None,
    ) -> Channel:
        now = self._clock.now()
        async with self._db.tx(Actor.user(user_id)) as conn:
            channel = await store.get_channel(conn, user_id, channel_id)
            if channel is None:
                raise NotFound("알림 채널이 없습니다 (no such channel)", "notify.not_found")
            self._check(channel.kind, url, events, is_admin)
            values: dict[str, Any] = {"updated_at": now}
            if label is not None:
                values["label"] = label
            if events is not None:
                values["events"] = list(dict.fromkeys(events))
            if enabled is not None:
                values["enabled"] = enabled
            if url is not None:
                await keystate.use_current(self._vault, conn, now)
                values["url_enc"] = self._vault.encrypt(
                    url.encode(), store.channel_aad(user_id, channel_id)
                )
                values["key_id"] = self._vault.current_key_id
                values["target_masked"] = store.mask_url(channel.kind, url)
                values["last_error"] = None
            await store.update_channel(conn, user_id, channel_id, **values)
            updated = await store.get_channel(conn, user_id, channel_id)
        assert updated is not None
        return updated

    async def delete(self, user_id: int, channel_id: int) -> None:
        async with self._db.tx(Actor.user(user_id)) as conn:
            if not await store.delete_channel(conn, user_id, channel_id):
                raise NotFound("알림 채널이 없습니다 (no such channel)", "notify.not_found")

    async def send_test(self, user_id: int, channel_id: int) -> None:
        async with self._db.tx(Actor.user(user_id)) as conn:
            channel = await store.get_channel(conn, user_id, channel_id)
        if channel is None:
            raise NotFound("알림 채널이 없습니다 (no such channel)", "notify.not_found")
        self.enqueue(
            Message(
                user_id,
                "test",
                "hoga 테스트 알림 (test notification)",
                f"'{channel.label}' 채널이 작동합니다 (this channel works).",
                channel_id=channel_id,
            )
        )
