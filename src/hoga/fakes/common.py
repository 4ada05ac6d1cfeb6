"""The machinery both fake brokers share (``fakes/kis/``, ``fakes/kiwoom/``).

Each fake is a server (``server.py``: set-up, lifecycle, test hooks, own records) with a REST
part (``rest.py``) and a WebSocket part (``ws.py``). What does not depend on the broker's wire
lives here: reading an accounts file, serving a Starlette app on a loopback socket, driving the
simulated market, restoring the books from the journal, the fault knobs every fake has, a
WebSocket session's outgoing queue, and the ASGI layers that make a deliberately dropped
connection look like one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import socket
import tomllib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from hoga.domain import krx
from hoga.fakes.faults import FaultPlan
from hoga.fakes.journal import Journal, restore_from

# --------------------------------------------------------------------------- accounts


def read_accounts(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """The entries of an accounts file: JSON (a list, or ``{"accounts": [...]}``) or TOML
    (``[[accounts]]``). Each entry is a table with at least the ``required`` fields."""
    text = path.read_text(encoding="utf-8")
    data: Any = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    entries = data.get("accounts", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of accounts")
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: account #{n} is not a table/object")
        missing = [k for k in required if not entry.get(k)]
        if missing:
            raise ValueError(f"{path}: account #{n} lacks {', '.join(missing)}")
    return entries


# --------------------------------------------------------------------------- faults


@dataclass
class FaultKnobs:
    """The knobs every fake has: added latency, a seeded share of HTTP 500s, and the fault
    plan (``--fault``) for order requests. Each fake's own knobs extend these."""

    latency: float = 0.0
    error_rate: float = 0.0
    plan: FaultPlan = field(default_factory=FaultPlan)

    async def delay(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)

    def random_500(self, rng: random.Random) -> bool:
        """Whether this request draws an HTTP 500 (``error_rate``, from the fake's seed)."""
        return bool(self.error_rate) and rng.random() < self.error_rate


async def json_body(
    request: Request, *, empty: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The request's JSON object; ``empty`` for an empty body; None when it is not one."""
    raw = await request.body()
    if not raw and empty is not None:
        return empty
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- books


class Journaled(Protocol):
    """An exchange whose books a journal keeps."""

    journal: Journal | None

    def restore(self, records: list[dict[str, Any]]) -> int: ...


class Committing(Protocol):
    """An exchange that writes what changed since its last commit to its journal."""

    def commit(self) -> None: ...


_Ex = TypeVar("_Ex", bound=Committing)
_Args = ParamSpec("_Args")
_Result = TypeVar("_Result")


def committed(
    operation: Callable[Concatenate[_Ex, _Args], _Result],
) -> Callable[Concatenate[_Ex, _Args], _Result]:
    """Make an exchange command commit its journal when it ends, answered or refused.

    A refused command may still have changed the books (a roll to a new day) and those
    changes must be written before the server answers, so the commit sits in ``finally``.
    """

    @functools.wraps(operation)
    def run(exchange: _Ex, /, *args: _Args.args, **kwargs: _Args.kwargs) -> _Result:
        try:
            return operation(exchange, *args, **kwargs)
        finally:
            exchange.commit()

    return run


async def open_books(journal: Journal | None, exchange: Journaled) -> int:
    """Before serving: build the KRX calendar and restore the books from the journal.

    The calendar (sell tax, settlement dates) takes seconds to build - half a minute on a busy
    machine; built lazily, the first sell fill would freeze the server that long, so it is
    built here, in a thread. Books come first, then the journal takes new records: a restart
    continues where the last process stopped (order numbers included). Returns how many
    orders were restored.
    """
    await asyncio.to_thread(krx.warm_calendar)
    if journal is None or exchange.journal is not None:
        return 0
    restored = restore_from(journal, exchange.restore)
    exchange.journal = journal
    journal.open()
    return restored


async def drive(pump: Callable[[int], object], ticks_per_second: float, interval: float) -> None:
    """Trade the market at ``ticks_per_second`` until cancelled, waking every ``interval``
    seconds and catching up (at most a second's worth at once) when the loop was late."""
    loop = asyncio.get_running_loop()
    start, produced = loop.time(), 0
    while True:
        await asyncio.sleep(interval)
        due = int((loop.time() - start) * ticks_per_second) - produced
        if due > 0:
            pump(min(due, int(ticks_per_second) + 1))
            produced += due


# --------------------------------------------------------------------------- serving


@dataclass
class Served:
    """A fake's running uvicorn server, its task and the port it listens on."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int


async def serve(app: ASGIApp, host: str, port: int, *, name: str, grace: float) -> Served:
    """Serve ``app`` on ``host:port`` (0: any free port) and return once it listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it; without it uvicorn on a passed-in socket answers
    # small requests ~40 ms late (Nagle against the client's delayed ACK).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        ws="websockets-sansio",
        access_log=False,
        timeout_graceful_shutdown=int(grace),
    )
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    task = loop.create_task(server.serve(sockets=[sock]), name=name)
    deadline = loop.time() + 10
    while not server.started:
        if task.done():
            task.result()
            raise OSError(f"the {name} did not start")
        if loop.time() > deadline:
            raise TimeoutError(f"the {name} did not start within 10 s")
        await asyncio.sleep(0.01)
    return Served(server, task, int(sock.getsockname()[1]))


# --------------------------------------------------------------------------- WebSocket


class Outbox:
    """A WebSocket session's outgoing frames, written in order by one ``writer`` task.

    ``end`` queues the end of the session: the writer stops there and, when ``close_code``
    is set, closes the socket with it. Frames sent after the end are dropped.
    """

    def __init__(self, websocket: WebSocket, close_code: int | None = None) -> None:
        self.websocket = websocket
        self.out: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False
        self.close_code = close_code

    def send(self, text: str) -> None:
        if not self.closed:
            self.out.put_nowait(text)

    def end(self, close_code: int | None = None) -> None:
        if close_code is not None:
            self.close_code = close_code
        self.closed = True
        self.out.put_nowait(None)

    async def writer(self) -> None:
        ws = self.websocket
        try:
            while True:
                text = await self.out.get()
                if text is None:
                    if self.close_code is not None:
                        with contextlib.suppress(Exception):
                            await ws.close(code=self.close_code)
                    return
                await ws.send_text(text)
        except Exception:  # the client went away; the reader notices too
            return


async def close_quietly(ws: WebSocket, code: int) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code)


# --------------------------------------------------------------------------- dropped connections


class DroppedResponse(Response):
    """Starts a reply, sends a third of it, then the connection goes away (``QuietDrops``
    aborts it)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(raw, media_type="application/json")
        self._raw = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._raw)).encode()),
                ],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": self._raw[: len(self._raw) // 3],
                "more_body": True,
            }
        )
        raise ConnectionAbortedError("fake: connection dropped mid-reply")


DROP_FLAG: Final = "fake_drop"


def drop_connection(request: Request) -> None:
    """Mark ``request`` so that ``QuietDrops`` aborts its connection before the answer."""
    request.scope.setdefault("state", {})[DROP_FLAG] = True


class QuietDrops:
    """Outermost ASGI layer for the fakes' dropped connections.

    A request marked with ``drop_connection`` has its socket aborted before the response
    leaves, so the client sees the connection vanish (without a transport to abort, the body is
    cut short instead: still a broken answer). A reply cut off mid-way (``DroppedResponse``)
    ends with the connection aborted, not with a traceback in the fake's log.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def guarded(message: MutableMapping[str, Any]) -> None:
            if not state.get(DROP_FLAG):
                await send(message)
                return
            if message["type"] == "http.response.start":
                transport = _transport(send)
                if transport is not None:
                    transport.abort()
                    state[DROP_FLAG] = "aborted"
                    # The server still "answers" into the dead socket, so it logs nothing.
                    await send(message)
                    return
                headers = [(b"content-length", b"4096"), (b"content-type", b"text/plain")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                state[DROP_FLAG] = "partial"
                return
            if state.get(DROP_FLAG) == "aborted":
                await send(message)
            elif message["type"] == "http.response.body":
                await send({"type": "http.response.body", "body": b"{", "more_body": False})

        try:
            await self.app(scope, receive, guarded)
        except ConnectionAbortedError:
            transport = _transport(send)
            if transport is None:
                raise
            transport.abort()


def _transport(send: Callable[..., Awaitable[None]]) -> Any:
    return getattr(getattr(send, "__self__", None), "transport", None)
