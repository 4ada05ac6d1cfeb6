"""KIS's published instrument master files: ``kospi_code.mst.zip`` / ``kosdaq_code.mst.zip``.

Each line (cp949) is a head - short code (9), standard code (12), Korean name (the rest) -
and a fixed-width tail: 227 characters for KOSPI, 221 for KOSDAQ, whose field widths are
those of the official ``stocks_info/kis_kospi_code_mst.py`` / ``kis_kosdaq_code_mst.py``.
Only the fields hoga uses are read; their offsets are derived from the widths below.
The files need no credentials; the real host is fixed (``MASTER_URL``), tests and the fake
use their own.
"""

from __future__ import annotations

import io
import zipfile
from typing import Final

import httpx

from hoga.domain.market import Listing

MASTER_URL: Final = "https://new.real.download.dws.co.kr/common/master"
FILES: Final = {"KOSPI": "kospi_code.mst.zip", "KOSDAQ": "kosdaq_code.mst.zip"}

# Widths up to the last field read; names for the fields hoga reads ("" for the rest).
_COMMON_AFTER_FLAGS: Final = (
    ("base_price", 9), ("", 5), ("", 5), ("halted", 1), ("liquidation", 1), ("admin", 1),
    ("warning", 2), ("", 1), ("", 1), ("", 1), ("", 2), ("", 2), ("", 2), ("", 3), ("", 1),
    ("", 3), ("", 12), ("", 12), ("listed_on", 8), ("listed_shares", 15),
)  # fmt: skip
_LAYOUT: Final = {
    "KOSPI": (227, (("group", 2), ("", 1), ("", 12), ("", 26), *_COMMON_AFTER_FLAGS)),
    "KOSDAQ": (221, (("group", 2), ("", 1), ("", 12), ("", 21), *_COMMON_AFTER_FLAGS)),
}
_KINDS: Final = {"EF": "etf", "EN": "etn"}
_WARNINGS: Final = {"01": "caution", "02": "warning", "03": "risk"}


class MasterError(Exception):
    """The master file could not be read (download failed, not a zip, wrong layout)."""


def _offsets(market: str) -> tuple[int, dict[str, tuple[int, int]]]:
    width, fields = _LAYOUT[market]
    out, pos = {}, 0
    for name, w in fields:
        if name:
            out[name] = (pos, pos + w)
        pos += w
    return width, out


def _int(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0


def parse_mst(data: bytes, market: str) -> list[Listing]:
    """Parse one market's ``.mst`` text (cp949). Lines too short to hold a tail are skipped."""
    width, off = _offsets(market)
    out = []
    for raw in data.decode("cp949", errors="replace").splitlines():
        if len(raw) <= width + 21:
            continue
        head, tail = raw[:-width], raw[-width:]

        def f(name: str, tail: str = tail) -> str:
            a, b = off[name]
            return tail[a:b]

        symbol = head[:9].strip()
        group = f("group").strip()
        shares_k = _int(f("listed_shares"))
        out.append(
            Listing(
                symbol=symbol,
                name=head[21:].strip(),
                market=market,
                kind=_KINDS.get(group, "stock"),
                group=group,
                std_code=head[9:21].strip(),
                base_price=_int(f("base_price")),
                listed_shares=shares_k * 1000,
                halted=f("halted") == "Y",
                admin_issue=f("admin") == "Y",
                warning=_WARNINGS.get(f("warning"), ""),
                liquidation=f("liquidation") == "Y",
                listed_on=f("listed_on").strip(),
            )
        )
    return out


def parse_zip(data: bytes, market: str) -> list[Listing]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = [n for n in z.namelist() if n.endswith(".mst")]
            if not names:
                raise MasterError(f"{FILES[market]} holds no .mst file")
            return parse_mst(z.read(names[0]), market)
    except zipfile.BadZipFile:
        raise MasterError(f"{FILES[market]} is not a zip file") from None


async def download(base_url: str = MASTER_URL, *, request_timeout: float = 30.0) -> list[Listing]:
    """Both markets' masters from ``base_url`` (``.../kospi_code.mst.zip`` and so on)."""
    out: list[Listing] = []
    async with httpx.AsyncClient(timeout=request_timeout, follow_redirects=True) as http:
        for market, name in FILES.items():
            try:
                resp = await http.get(f"{base_url.rstrip('/')}/{name}")
            except httpx.HTTPError as e:
                raise MasterError(f"{name}: {type(e).__name__}") from None
            if resp.status_code != 200:
                raise MasterError(f"{name}: HTTP {resp.status_code}")
            out += parse_zip(resp.content, market)
    return out


class KisMasterSource:
    """``InstrumentSource`` over the published master files (no credentials needed)."""

    name = "kis"

    def __init__(self, base_url: str = MASTER_URL) -> None:
        self.base_url = base_url

    async def listings(self) -> list[Listing]:
        return await download(self.base_url)
