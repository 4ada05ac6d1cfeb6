"""Per-user IP allowlists (CIDR lists; empty means any address)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from hoga.domain.errors import InvalidInput

MAX_ENTRIES = 50


def normalize(entries: Iterable[str]) -> list[str]:
    """Validate and canonicalise CIDRs; a bad entry is a 422 naming it."""
    out: list[str] = []
    for raw in entries:
        text = str(raw).strip()
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise InvalidInput(
                f"올바른 IP/CIDR이 아닙니다: {text!r} (e.g. 203.0.113.0/24)",
                "ip_allowlist.invalid",
                entry=text,
            ) from None
        if str(net) not in out:
            out.append(str(net))
    if len(out) > MAX_ENTRIES:
        raise InvalidInput(f"IP 허용 목록은 {MAX_ENTRIES}개까지입니다", "ip_allowlist.too_many")
    return out


def allowed(address: str | None, allowlist: list[str]) -> bool:
    if not allowlist:
        return True
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(n) for n in allowlist)
