"""Which hosts hoga may call for a broker account: the broker's own, unless the operator says.

A user-supplied ``base_url``/``ws_url`` made the server call any host and port it was given (a
port scanner through ``POST /api/broker-accounts/{id}/test``). Custom URLs are now refused
unless the operator enables them (``HOGA_ALLOW_CUSTOM_BROKER_URLS``) and then only for the hosts
the operator lists (``HOGA_BROKER_URL_HOSTS``: ``host`` or ``host:port`` entries, e.g. the
loopback address of ``hoga fake-broker``). Without a custom URL the adapters use the real hosts
fixed per broker and environment in their wire modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hoga.domain.errors import InvalidInput

_SCHEMES = {"http", "https", "ws", "wss"}
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


@dataclass(frozen=True, slots=True)
class BrokerUrlPolicy:
    """``allow``: custom URLs at all; ``hosts``: ``host`` or ``host:port`` entries allowed."""

    allow: bool = False
    hosts: tuple[str, ...] = field(default_factory=tuple)

    def problem(self, url: str) -> tuple[str, str] | None:
        """(code, message) when ``url`` may not be used, else None."""
        if not self.allow:
            return (
                "account.custom_url_forbidden",
                "이 서버는 사용자 지정 브로커 주소를 허용하지 않습니다 "
                "(custom broker URLs are disabled on this server)",
            )
        if re.search(r"\s", url):
            return "account.bad_url", "URL must not contain spaces"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "account.bad_url", "not a valid URL"
        if parts.scheme not in _SCHEMES or not parts.hostname:
            return "account.bad_url", "must be an http(s) or ws(s) URL"
        if parts.username is not None or parts.password is not None:
            return "account.bad_url", "URL must not carry a user name or password"
        host = parts.hostname.lower().rstrip(".")
        port = port or _DEFAULT_PORTS[parts.scheme]
        for entry in self.hosts:
            want_host, _, want_port = entry.lower().rpartition(":")
            if not want_host or not want_port.isdigit() or "]" in want_port:
                want_host, want_port = entry.lower(), ""
            want_host = want_host.strip("[]")
            if want_host == host and (not want_port or int(want_port) == port):
                return None
        return (
            "account.url_host_not_allowed",
            f"허용되지 않은 호스트입니다: {host}:{port} (host not in HOGA_BROKER_URL_HOSTS)",
        )

    def check(self, name: str, url: str | None) -> None:
        """Raise a 422 naming the field when ``url`` may not be used."""
        if url is None:
            return
        problem = self.problem(url)
        if problem is not None:
            code, message = problem
            raise InvalidInput(f"{name}: {message}", code, field=name)

    def permits(self, url: str | None) -> bool:
        return url is None or self.problem(url) is None
