"""Who is calling: the client address, with forwarding headers trusted only from named proxies.

uvicorn's own ``proxy_headers`` is switched off (``hoga serve``): it trusts 127.0.0.1 by
default, so any local process could claim any address with a forged ``X-Forwarded-For`` and
walk past IP allowlists and the sign-in lock. hoga resolves the address itself:

* no trusted proxies configured (the default): the TCP peer, whatever the headers say;
* the peer is a trusted proxy: walk ``X-Forwarded-For`` from the right and take the first
  address that is not a trusted proxy - the one the outermost trusted proxy saw. That is what
  nginx's ``$proxy_add_x_forwarded_for`` yields: ``10.1.2.3, 203.0.113.9`` (the client sent the
  first entry itself, nginx appended the second) resolves to ``203.0.113.9``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """CIDRs (or single addresses) to networks; raises ValueError naming a bad entry."""
    out: list[Network] = []
    for raw in entries:
        text = raw.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR: {text!r}") from None
    return out


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(text: str | None, trusted: list[Network]) -> bool:
    ip = _ip(text) if text else None
    return ip is not None and any(ip in net for net in trusted)


def client_address(
    peer: str | None, headers: Mapping[str, str], trusted: list[Network]
) -> str | None:
    """The caller's address for allowlists, throttles and audit entries (see module doc)."""
    if not trusted or not _trusted(peer, trusted):
        return peer
    chain = [p.strip() for p in ",".join(_all(headers, "x-forwarded-for")).split(",")]
    chain = [p for p in chain if p]
    for hop in reversed(chain):
        if _trusted(hop, trusted):
            continue
        ip = _ip(hop)
        # A malformed entry where a trusted proxy should have written the client: nobody can
        # say who called, and an unknown address matches no allowlist.
        return str(ip) if ip is not None else None
    first = _ip(chain[0]) if chain else None
    return str(first) if first is not None else peer


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:
        values: list[str] = getlist(name)
        return values
    value = headers.get(name)
    return [value] if value else []
