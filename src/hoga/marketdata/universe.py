"""The bundled KRX universe: real codes and names with reference prices for simulation."""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources

from hoga.domain import krx
from hoga.domain.market import Instrument


@functools.cache
def bundled_universe() -> tuple[Instrument, ...]:
    """133 KOSPI/KOSDAQ stocks and ETFs; prices are plausible references, not live data."""
    text = resources.files("hoga.marketdata").joinpath("data/universe.csv").read_text("utf-8")
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        inst = Instrument(
            symbol=row["symbol"],
            name=row["name"],
            market=row["market"],
            kind=row["kind"],
            base_price=int(row["ref_price"]),
        )
        if not krx.is_valid_symbol(inst.symbol):
            raise ValueError(f"bundled universe has an invalid code {inst.symbol!r}")
        out.append(inst)
    return tuple(out)


class Universe:
    """Symbol lookup over a set of instruments: the bundle, or - with a broker feed - the
    instrument master (``replace``, called by ``marketdata.instruments`` after a sync)."""

    def __init__(self, instruments: tuple[Instrument, ...] | list[Instrument]) -> None:
        self._by_symbol = {i.symbol: i for i in instruments}
        self.instruments = tuple(instruments)

    def replace(self, instruments: tuple[Instrument, ...] | list[Instrument]) -> None:
        """Swap the whole set at once (readers see the old or the new set, never a mix)."""
        by_symbol = {i.symbol: i for i in instruments}
        self._by_symbol, self.instruments = by_symbol, tuple(instruments)

    def get(self, symbol: str) -> Instrument | None:
        return self._by_symbol.get(symbol)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def __len__(self) -> int:
        return len(self._by_symbol)

    def search(self, query: str, limit: int = 20) -> list[Instrument]:
        q = query.strip().lower()
        if not q:
            return list(self.instruments[:limit])
        hits = [i for i in self.instruments if q in i.symbol.lower() or q in i.name.lower()]
        return hits[:limit]
