"""One KIS WebSocket session per app key, shared by execution notices and market data.

KIS allows one session per app key and 41 registrations per session (kis.md §8.9), so the
notice registration of a key and the market-data registrations of the feed ride on the same
socket. ``KisSocket`` owns that connection:

* registrations are sent one at a time and each waits for its control reply (§8.2);
* data frames are split, decrypted when flagged (AES-256-CBC with the key/iv of the TR's
  subscribe reply, §8.4) and handed to the listener registered for their tr_id;
* ``PINGPONG`` is echoed (§8.3);
* when the connection drops, *transient* registrations (market data) are forgotten and their
  owners told through their close callbacks - the hub reopens and resubscribes - while
  *persistent* ones (execution notices) are restored by the socket itself: it reconnects with
  exponential backoff and registers them again (keys and ivs are per session);
* the approval key is fetched when the socket first needs one and again whenever KIS refuses
  it (OPSP0011 - a restarted KIS server no longer knows the keys it issued): the refused
  registration is retried once at once with the new key, and a key that cannot be had is a
  ``KisRealtimeError`` (``kis.approval_failed``) that the restore loop retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from hoga.brokers.kis import wire

log = logging.getLogger(__name__)
# websockets logs every frame at DEBUG, and subscribe frames carry the approval key: give it a
# logger of its own that never goes below INFO, whatever the server's log level.
_frames_log = logging.getLogger("hoga.brokers.kis.frames")
_frames_log.setLevel(logging.INFO)

RecordHandler = Callable[[list[str]], None]
DropHandler = Callable[[BaseException | None], None]
ApprovalSource = Callable[[], Awaitable[str]]


class KisRealtimeError(Exception):
    """A registration was refused or the socket is unusable; ``code`` is KIS's msg_cd."""

    def __init__(self, message: str, code: str = "kis.realtime") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def ws_endpoint(ws_url: str) -> str:
    """Append ``/tryitout`` to a bare host URL (§1); keep a URL that already has a path."""
    base = ws_url.rstrip("/")
    scheme_end = base.find("://")
    rest = base[scheme_end + 3 :] if scheme_end >= 0 else base
    return base if "/" in rest else base + wire.WS_PATH


class KisSocket:
    """The WebSocket session of one app key; see the module docstring."""

    def __init__(
        self,
        key_id: str,
        ws_url: str,
        approval: ApprovalSource,
        *,
        ack_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        backoff_start: float = 0.5,
        backoff_max: float = 30.0,
        max_registrations: int = wire.MAX_REGISTRATIONS,
    ) -> None:
        self.key_id = key_id
        self.url = ws_endpoint(ws_url)
        self._approval = approval
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self.max_registrations = max_registrations
        self._ws: ClientConnection | None = None
        self._approval_key: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self._op_lock = asyncio.Lock()
        self._approval_lock = asyncio.Lock()
        self.approvals = 0
        self._pending: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        self.persistent: set[tuple[str, str]] = set()
        self.refused: dict[tuple[str, str], tuple[str, str]] = {}
        self.active: set[tuple[str, str]] = set()
        self.transient: dict[tuple[str, str], str] = {}
        self._crypto: dict[str, tuple[str, str]] = {}
        self.listeners: dict[str, RecordHandler] = {}
        self._drop_handlers: dict[str, DropHandler] = {}
        self._closing = False
        self.connects = 0
        self.drops = 0
        self.pings = 0

    # ------------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def registrations(self) -> int:
        return len(self.active)

    def on_drop(self, owner: str, handler: DropHandler | None) -> None:
        """Be told when the connection ends (market-data sessions use this)."""
        if handler is None:
            self._drop_handlers.pop(owner, None)
        else:
            self._drop_handlers[owner] = handler

    # ------------------------------------------------------------------ connecting

    async def _approval_now(self, refused: str | None = None) -> str:
        """The approval key to send; ``refused`` names one KIS just refused (fetch anew)."""
        async with self._approval_lock:
            if refused is not None and self._approval_key == refused:
                self._approval_key = None
            if self._approval_key is not None:
                return self._approval_key
            try:
                key = await self._approval()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                code = str(getattr(e, "code", "") or type(e).__name__)
                raise KisRealtimeError(
                    f"KIS 실시간 접속키를 발급받지 못했습니다 ({code})", "kis.approval_failed"
                ) from None
            self._approval_key = key
            self.approvals += 1
            return key

    async def ensure_open(self) -> None:
        if self._ws is not None:
            return
        async with self._connect_lock:
            if self._ws is not None:
                return
            if self._closing:
                raise KisRealtimeError("socket is closed", "kis.closed")
            # No session without a key to register with; a stale one is replaced on refusal.
            await self._approval_now()
            try:
                ws = await asyncio.wait_for(
                    connect(
                        self.url,
                        max_size=2**22,
                        open_timeout=self.connect_timeout,
                        logger=_frames_log,
                    ),
                    self.connect_timeout + 1,
                )
            except (OSError, TimeoutError, WebSocketException) as e:
                raise KisRealtimeError(
                    f"KIS 실시간 서버에 연결할 수 없습니다 ({type(e).__name__})",
                    "kis.ws_unreachable",
                ) from None
            self._ws = ws
            self.connects += 1
            self._crypto.clear()
            self.active.clear()
            self._reader = asyncio.get_running_loop().create_task(
                self._read(ws), name=f"kis-ws-{self.key_id}"
            )

    async def _read(self, ws: ClientConnection) -> None:
        error: BaseException | None = None
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                try:
                    await self._handle(ws, text)
                except Exception:
                    log.exception("KIS realtime message handling failed (key %s)", self.key_id)
        except WebSocketException as e:
            error = e
        except OSError as e:
            error = e
        if error is None and not self._closing:
            error = ConnectionResetError("KIS closed the realtime session")
        self._dropped(ws, error)

    def _dropped(self, ws: ClientConnection, error: BaseException | None) -> None:
        if self._ws is not ws:
            return
        self._ws = None
        self.active.clear()
        self._crypto.clear()
        if error is not None:
            self.drops += 1
            log.warning(
                "KIS realtime session of key %s ended: %s", self.key_id, type(error).__name__
            )
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(KisRealtimeError("connection lost", "kis.ws_closed"))
        self._pending.clear()
        self.transient.clear()
        handlers = list(self._drop_handlers.values())
        self._drop_handlers.clear()
        for handler in handlers:
            try:
                handler(error)
            except Exception:
                log.exception("realtime drop handler failed")
        if not self._closing and self.persistent:
            self._keep()

    def _keep(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(
                self._restore(), name=f"kis-ws-keeper-{self.key_id}"
            )

    async def _restore(self) -> None:
        """Reconnect with backoff and register the persistent TRs again."""
        delay = self.backoff_start
        while not self._closing and self.persistent:
            try:
                await self.ensure_open()
                for tr_id, tr_key in sorted(self.persistent):
                    if (tr_id, tr_key) in self.active:
                        continue
                    try:
                        await self._register(tr_id, tr_key)
                    except KisRealtimeError as e:
                        if e.code in _TRANSIENT:
                            raise
                        # KIS said no to this registration itself (a wrong HTS id...):
                        # asking again will not help. Keep the reason for /test to report.
                        self.persistent.discard((tr_id, tr_key))
                        self.refused[(tr_id, tr_key)] = (e.code, e.message)
                        log.warning(
                            "KIS refused %s registration on key %s: %s", tr_id, self.key_id, e.code
                        )
                return
            except KisRealtimeError as e:
                log.warning(
                    "KIS realtime key %s: %s (%s); retrying in %.1fs",
                    self.key_id,
                    e.message,
                    e.code,
                    delay,
                )
            except Exception as e:
                log.warning(
                    "KIS realtime key %s: %s; retrying in %.1fs",
                    self.key_id,
                    type(e).__name__,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    # ------------------------------------------------------------------ messages

    async def _handle(self, ws: ClientConnection, text: str) -> None:
        if text[:1] in ("0", "1"):
            frame = wire.parse_frame(text)
            if frame is None:
                return
            encrypted, tr_id, count, payload = frame
            handler = self.listeners.get(tr_id)
            if handler is None:
                return
            if encrypted:
                keys = self._crypto.get(tr_id)
                if keys is None:
                    log.warning("encrypted %s frame before its key arrived; dropped", tr_id)
                    return
                payload = wire.aes_decrypt(keys[0], keys[1], payload)
            width = _WIDTHS.get(tr_id)
            values = payload.split("^")
            recs = wire.records(payload, count, width) if width else [values]
            for rec in recs:
                handler(rec)
            return
        try:
            msg = json.loads(text)
        except ValueError:
            log.warning("KIS realtime: unreadable control message (%d chars)", len(text))
            return
        header = msg.get("header") or {}
        tr_id = str(header.get("tr_id") or "")
        if tr_id == "PINGPONG":
            self.pings += 1
            with contextlib.suppress(WebSocketException, OSError):
                await ws.send(text)
            return
        body = msg.get("body") or {}
        tr_key = str(header.get("tr_key") or "")
        output = body.get("output") or {}
        if isinstance(output, dict) and output.get("key") and output.get("iv"):
            self._crypto[tr_id] = (str(output["key"]), str(output["iv"]))
        fut = self._pending.pop((tr_id, tr_key), None)
        if fut is None and len(self._pending) == 1:
            # Some servers leave tr_key off error replies; one request is outstanding.
            (only,) = list(self._pending)
            if only[0] == tr_id or not tr_id:
                fut = self._pending.pop(only)
        if fut is not None and not fut.done():
            fut.set_result(body)

    async def _control(
        self, tr_id: str, tr_key: str, tr_type: str, approval: str
    ) -> dict[str, Any]:
        ws = self._ws
        if ws is None:
            raise KisRealtimeError("not connected", "kis.ws_closed")
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[(tr_id, tr_key)] = fut
        message = {
            "header": {
                "approval_key": approval,
                "custtype": "P",
                "tr_type": tr_type,
                "content-type": "utf-8",
            },
            "body": {"input": {"tr_id": tr_id, "tr_key": tr_key}},
        }
        try:
            await ws.send(json.dumps(message))
            return await asyncio.wait_for(fut, self.ack_timeout)
        except TimeoutError:
            raise KisRealtimeError(
                f"KIS가 {tr_id} 등록에 응답하지 않습니다 (no reply)", "kis.ws_no_reply"
            ) from None
        except (WebSocketException, OSError):
            raise KisRealtimeError("connection lost", "kis.ws_closed") from None
        finally:
            self._pending.pop((tr_id, tr_key), None)

    async def _register(self, tr_id: str, tr_key: str) -> None:
        async with self._op_lock:
            if (tr_id, tr_key) in self.active:
                return
            if len(self.active) >= self.max_registrations:
                raise KisRealtimeError(
                    f"MAX SUBSCRIBE OVER: 세션당 {self.max_registrations}건까지 등록할 수 있습니다",
                    "OPSP0008",
                )
            refused: str | None = None
            for _ in range(2):
                approval = await self._approval_now(refused)
                body = await self._control(tr_id, tr_key, "1", approval)
                rt_cd, msg_cd = str(body.get("rt_cd", "")), str(body.get("msg_cd", ""))
                msg1 = str(body.get("msg1", "")).strip()
                if rt_cd == "0" or msg_cd == "OPSP0002":
                    self.active.add((tr_id, tr_key))
                    return
                if msg_cd != "OPSP0011":
                    raise KisRealtimeError(
                        f"KIS {msg_cd or rt_cd}: {msg1}", msg_cd or "kis.realtime"
                    )
                # KIS no longer knows this key (its server restarted, or the key expired):
                # ask for a new one and try once more right away.
                log.info(
                    "KIS refused the approval key of key %s; asking for a new one", self.key_id
                )
                refused = approval
            raise KisRealtimeError(f"KIS {msg_cd}: {msg1}", "kis.approval_invalid")

    # ------------------------------------------------------------------ registrations

    async def register(self, tr_id: str, tr_key: str, *, owner: str | None = None) -> None:
        """Register a TR; ``owner`` None means persistent (restored after reconnects)."""
        if owner is None:
            self.persistent.add((tr_id, tr_key))
            self.refused.pop((tr_id, tr_key), None)
        try:
            await self.ensure_open()
            await self._register(tr_id, tr_key)
        except KisRealtimeError:
            if owner is None:
                self._keep()
            raise
        if owner is not None:
            self.transient[(tr_id, tr_key)] = owner

    async def unregister(self, tr_id: str, tr_key: str) -> None:
        self.persistent.discard((tr_id, tr_key))
        self.transient.pop((tr_id, tr_key), None)
        async with self._op_lock:
            if (tr_id, tr_key) not in self.active or self._ws is None:
                self.active.discard((tr_id, tr_key))
                return
            self.active.discard((tr_id, tr_key))
            with contextlib.suppress(KisRealtimeError):
                await self._control(tr_id, tr_key, "2", await self._approval_now())

    def keep_persistent(self) -> None:
        """Make sure the persistent registrations are (being) established."""
        if self.persistent and not self._closing:
            self._keep()

    def is_registered(self, tr_id: str, tr_key: str) -> bool:
        return (tr_id, tr_key) in self.active

    async def close(self) -> None:
        self._closing = True
        for task in (self._keeper,):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 2.0)
        if self._ws is not None:
            self._dropped(self._ws, None)


# Failures worth retrying with backoff; any other refusal is final for that registration.
_TRANSIENT = frozenset(
    {
        "kis.ws_unreachable",
        "kis.ws_closed",
        "kis.ws_no_reply",
        "kis.approval_invalid",
        "kis.approval_failed",
        "OPSP8996",
        "OPSP0007",
    }
)

_WIDTHS = {
    wire.TRADE_TR: len(wire.TRADE_FIELDS),
    wire.BOOK_TR: len(wire.BOOK_FIELDS),
    "H0STCNI0": len(wire.NOTICE_FIELDS),
    "H0STCNI9": len(wire.NOTICE_FIELDS),
}
