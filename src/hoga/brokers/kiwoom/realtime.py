"""Kiwoom's realtime WebSocket: one session per app key, shared by execution notices and quotes.

Protocol (kiwoom.md A9): connect to ``.../api/dostk/websocket``; send
``{"trnm":"LOGIN","token":<token, no "Bearer">}`` and wait for the ``LOGIN`` reply; register
with ``REG`` (``grp_no``, ``refresh``, ``data: [{item: [...], type: [...]}]``), each answered by
an ack carrying only ``trnm``/``return_code``/``return_msg``; data arrives as ``REAL`` frames;
the server's ``PING`` must be sent back unchanged; ``SYSTEM`` frames announce the end of the
session (``R10001``: the same app key connected elsewhere and took the session over).

``RealtimeConnection`` keeps what is registered per group and replays it after every
(re)connect, so callers never re-subscribe: drops are retried with exponential backoff; a
takeover (``R10001``) waits ``takeover_backoff`` before reclaiming the key, so two processes
sharing a key do not evict each other in a tight loop; refused credentials wait
``auth_backoff``. A refused token at LOGIN (8005) is re-issued once per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from hoga.brokers.base import BrokerAuthError, BrokerError
from hoga.brokers.kiwoom.errors import TOKEN_INVALID, describe
from hoga.brokers.kiwoom.tokens import TokenKeeper
from hoga.brokers.kiwoom.wire import broker_code, return_code

log = logging.getLogger(__name__)
# websockets logs whole frames at DEBUG - the LOGIN frame carries the token. Its logger is
# pinned at INFO so turning hoga's log level to debug cannot leak it.
_FRAME_LOG: Final = logging.getLogger("hoga.brokers.kiwoom.frames")
_FRAME_LOG.setLevel(logging.INFO)

RealHandler = Callable[[str, str, dict[str, Any]], None]
TAKEOVER: Final = "R10001"


class RegistrationRefused(BrokerError):
    """Kiwoom answered a REG/REMOVE with a non-zero ``return_code``."""


@dataclass(frozen=True, slots=True)
class RealtimeOptions:
    """Reconnect pacing and limits of realtime sessions (seconds, items per REG packet)."""

    backoff_min: float = 0.5
    backoff_max: float = 30.0
    takeover_backoff: float = 30.0
    auth_backoff: float = 300.0
    login_timeout: float = 10.0
    ack_timeout: float = 10.0
    reg_chunk: int = 50


@dataclass
class _Group:
    types: tuple[str, ...]
    items: set[str] = field(default_factory=set)


class RealtimeConnection:
    """One app key's WebSocket session and its registrations; see the module docstring."""

    def __init__(
        self,
        url: str,
        tokens: TokenKeeper,
        *,
        label: str = "kiwoom",
        options: RealtimeOptions | None = None,
    ) -> None:
        self.url = url
        self._tokens = tokens
        self.label = label
        self.options = options or RealtimeOptions()
        self._groups: dict[str, _Group] = {}
        self._handlers: dict[str, list[RealHandler]] = {}
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._displaced = False
        self._send_lock = asyncio.Lock()
        self._reg_lock = asyncio.Lock()
        self._ack: asyncio.Future[dict[str, Any]] | None = None
        self.connected = asyncio.Event()
        self.logins = 0
        self.drops = 0
        self.takeovers = 0
        self.pings = 0
        self.last_error: str | None = None

    # --- registry

    def on_real(self, types: Iterable[str], handler: RealHandler) -> None:
        for t in types:
            self._handlers.setdefault(t, []).append(handler)

    def off_real(self, handler: RealHandler) -> None:
        for handlers in self._handlers.values():
            with contextlib.suppress(ValueError):
                handlers.remove(handler)

    def registered(self, grp_no: str) -> frozenset[str]:
        g = self._groups.get(grp_no)
        return frozenset(g.items) if g else frozenset()

    @property
    def groups(self) -> dict[str, tuple[tuple[str, ...], frozenset[str]]]:
        return {k: (g.types, frozenset(g.items)) for k, g in self._groups.items()}

    async def register(self, grp_no: str, items: Iterable[str], types: Iterable[str]) -> None:
        """Add ``items`` x ``types`` to group ``grp_no``; sent now if connected, else at login.

        Raises ``RegistrationRefused`` (and forgets the items) if Kiwoom refuses them.
        """
        tps = tuple(types)
        group = self._groups.setdefault(grp_no, _Group(tps))
        group.types = tps
        new = [i for i in dict.fromkeys(items) if i not in group.items]
        if not new:
            self.start()
            return
        group.items.update(new)
        self.start()
        if self._ws is None:
            return
        try:
            await self._reg(grp_no, new, tps)
        except RegistrationRefused:
            group.items.difference_update(new)
            raise
        except (ConnectionError, ConnectionClosed, TimeoutError):
            pass  # the items stay recorded and are registered on the next login

    async def remove(self, grp_no: str, items: Iterable[str]) -> None:
        group = self._groups.get(grp_no)
        if group is None:
            return
        gone = [i for i in dict.fromkeys(items) if i in group.items]
        group.items.difference_update(gone)
        if gone and self._ws is not None:
            with contextlib.suppress(
                ConnectionError, ConnectionClosed, TimeoutError, RegistrationRefused
            ):
                await self._request("REMOVE", grp_no, gone, group.types)

    async def drop_group(self, grp_no: str) -> None:
        group = self._groups.get(grp_no)
        if group is None:
            return
        await self.remove(grp_no, list(group.items))
        self._groups.pop(grp_no, None)
        if not self._groups:
            await self.close()

    # --- lifecycle

    def start(self) -> None:
        self._closing = False
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"{self.label}-realtime"
            )

    async def close(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        task = self._task
        self._task = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.connected.clear()

    async def _run(self) -> None:
        backoff = self.options.backoff_min
        while not self._closing:
            delay = backoff
            logged_in = False
            try:
                logged_in = await self._session()
            except BrokerAuthError as e:
                self.last_error = e.code
                log.warning("%s realtime login refused (%s); retrying later", self.label, e.code)
                delay = self.options.auth_backoff
            except BrokerError as e:
                self.last_error = e.code
                log.warning("%s realtime: %s", self.label, e.code)
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError) as e:
                self.last_error = type(e).__name__
                log.warning("%s realtime connection failed (%s)", self.label, type(e).__name__)
            if self._closing:
                break
            if logged_in:
                self.drops += 1
                delay = self.options.backoff_min
                backoff = self.options.backoff_min
            if self._displaced:
                self._displaced = False
                delay = self.options.takeover_backoff
            await asyncio.sleep(delay)
            if not logged_in:
                backoff = min(backoff * 2, self.options.backoff_max)

    async def _session(self) -> bool:
        """One connection: LOGIN, replay registrations, read until it ends. True if logged in."""
        for attempt in (1, 2):
            token = await self._tokens.get()
            async with connect(
                self.url,
                ping_interval=None,
                open_timeout=self.options.login_timeout,
                close_timeout=2,
                max_size=4 * 1024 * 1024,
                logger=_FRAME_LOG,
            ) as ws:
                await ws.send(json.dumps({"trnm": "LOGIN", "token": token.reveal()}))
                reply = await asyncio.wait_for(self._login_reply(ws), self.options.login_timeout)
                rc = return_code(reply)
                if rc != 0:
                    msg = str(reply.get("return_msg") or "")
                    code = broker_code(rc, msg) or "login"
                    if code in TOKEN_INVALID and attempt == 1:
                        self._tokens.invalidate(token)
                        continue
                    raise BrokerAuthError(describe(code, msg), f"kiwoom.{code}")
                await self._serve(ws)
                return True
        return False

    async def _login_reply(self, ws: ClientConnection) -> dict[str, Any]:
        while True:
            raw = await ws.recv()
            msg = _decode(raw)
            if msg is None:
                continue
            if msg.get("trnm") == "PING":
                await ws.send(raw)
            elif msg.get("trnm") == "LOGIN":
                return msg
            elif msg.get("trnm") == "SYSTEM":
                raise BrokerError(
                    describe(str(msg.get("code")), str(msg.get("message") or "")),
                    f"kiwoom.{msg.get('code')}",
                )

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        self.logins += 1
        self.last_error = None
        reader = asyncio.get_running_loop().create_task(self._read(ws))
        try:
            await self._register_all()
            self.connected.set()
            log.info("%s realtime session logged in", self.label)
            await reader
        finally:
            self._ws = None
            self.connected.clear()
            if self._ack is not None and not self._ack.done():
                self._ack.set_exception(ConnectionError("realtime session ended"))
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _register_all(self) -> None:
        for grp_no, group in list(self._groups.items()):
            if not group.items:
                continue
            try:
                await self._reg(grp_no, sorted(group.items), group.types)
            except RegistrationRefused as e:
                log.warning("%s: group %s not restored: %s", self.label, grp_no, e.code)

    async def _reg(self, grp_no: str, items: list[str], types: tuple[str, ...]) -> None:
        for i in range(0, len(items), self.options.reg_chunk):
            await self._request("REG", grp_no, items[i : i + self.options.reg_chunk], types)

    async def _request(
        self, trnm: str, grp_no: str, items: list[str], types: tuple[str, ...]
    ) -> None:
        packet: dict[str, Any] = {"trnm": trnm, "grp_no": grp_no}
        if trnm == "REG":
            packet["refresh"] = "1"
        packet["data"] = [{"item": items, "type": list(types)}]
        async with self._reg_lock:
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._ack = fut
            await self._send(json.dumps(packet, ensure_ascii=False))
            reply = await asyncio.wait_for(fut, self.options.ack_timeout)
        rc = return_code(reply)
        if rc not in (0, None):
            msg = str(reply.get("return_msg") or "")
            code = broker_code(rc, msg) or str(rc)
            raise RegistrationRefused(describe(code, msg), f"kiwoom.reg_{code}")

    async def _send(self, text: str) -> None:
        ws = self._ws
        if ws is None:
            raise ConnectionError("realtime session is not connected")
        async with self._send_lock:
            await ws.send(text)

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            msg = _decode(raw)
            if msg is None:
                continue
            trnm = msg.get("trnm")
            if trnm == "REAL":
                self._dispatch(msg.get("data"))
            elif trnm == "PING":
                self.pings += 1
                # The heartbeat goes back exactly as it came.
                async with self._send_lock:
                    await ws.send(raw)
            elif trnm in ("REG", "REMOVE"):
                if self._ack is not None and not self._ack.done():
                    self._ack.set_result(msg)
            elif trnm == "SYSTEM":
                code = str(msg.get("code") or "")
                if code == TAKEOVER:
                    self.takeovers += 1
                    self._displaced = True
                    log.warning(
                        "%s: another session logged in with this app key and took over the "
                        "realtime session (R10001); reclaiming it in %.0fs",
                        self.label,
                        self.options.takeover_backoff,
                    )
                    await ws.close()
                    return
                log.warning("%s realtime: SYSTEM %s", self.label, code)

    def _dispatch(self, data: Any) -> None:
        if not isinstance(data, list):
            return
        for entry in data:
            if not isinstance(entry, dict):
                continue
            kind = str(entry.get("type") or "")
            values = entry.get("values")
            if not isinstance(values, dict):
                continue
            item = str(entry.get("item") or "")
            for handler in self._handlers.get(kind, ()):
                try:
                    handler(kind, item, values)
                except Exception:
                    log.exception("%s: handler for realtime type %s failed", self.label, kind)


def _decode(raw: str | bytes) -> dict[str, Any] | None:
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return msg if isinstance(msg, dict) else None
