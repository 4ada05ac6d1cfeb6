"""The listening socket ``hoga serve`` uses.

Its send buffer is capped (accepted connections inherit it): kernel buffers are where a slow
WebSocket reader's backlog would otherwise pile up - megabytes on Linux loopback - before the
server's per-connection conflation could take over. With a small buffer the server notices a
slow reader quickly and sends it only the latest quote per symbol.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hoga.config import Settings

SEND_BUFFER = 64 * 1024


def bind_listener(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A bound, listening TCP socket; raises OSError as ``bind`` does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        # Accepted sockets inherit this; without it Nagle's algorithm and delayed ACKs add
        # about 40 ms to every small response.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def local_url(settings: Settings) -> str:
    """The URL a process on this machine reaches the configured server at (a wildcard listen
    address is reached over loopback)."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
    host = wildcard.get(settings.host, settings.host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{settings.port}"
