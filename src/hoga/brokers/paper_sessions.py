"""When the paper broker's session events fall due: auctions, conversions, expiries.

The paper broker trades on ticks, but KRX's day has moments that no tick marks - the opening
and closing auctions, the conversion of conditional orders at 15:20, the after-close trade at
15:40, the twelve single-price rounds, the end of each session. ``SessionSchedule`` turns
``domain.krx``'s windows into those moments and hands each out once, in time order, as the
clock passes it; the paper broker executes them (``PaperBroker.advance``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from hoga.domain import krx
from hoga.domain.krx import Session


class Due(StrEnum):
    """What happens at a session moment."""

    OPENING_AUCTION = "opening_auction"  # match the opening call auction at the open
    CONVERT = "convert"  # conditional limit orders become market orders (closing auction)
    CLOSING_AUCTION = "closing_auction"  # match the closing auction; regular orders end
    AFTER_CLOSE = "after_close"  # closing-price orders trade at today's close
    SINGLE_PRICE = "single_price"  # one after-hours single-price round
    EXPIRE = "expire"  # the session ended: its unfilled orders lapse


@dataclass(frozen=True, slots=True)
class Moment:
    at: datetime
    due: Due
    session: Session


def day_moments(d: date) -> list[Moment]:
    """Every session moment of ``d``, in time order (empty on a closed day)."""
    out: list[Moment] = []
    for w in krx.day_windows(d):
        s = w.session
        if s == Session.OPENING_AUCTION:
            out.append(Moment(w.end, Due.OPENING_AUCTION, s))
        elif s == Session.CLOSING_AUCTION:
            out.append(Moment(w.start, Due.CONVERT, s))
            out.append(Moment(w.end, Due.CLOSING_AUCTION, s))
        elif s == Session.AFTER_CLOSE:
            out.append(Moment(w.trades_from, Due.AFTER_CLOSE, s))
            out.append(Moment(w.end, Due.EXPIRE, s))
        elif s == Session.SINGLE_PRICE:
            t = krx.single_price_round(w.start)
            while t is not None and t <= w.end:
                out.append(Moment(t, Due.SINGLE_PRICE, s))
                if t == w.end:
                    break
                t = krx.single_price_round(t.replace(microsecond=1))
            out.append(Moment(w.end, Due.EXPIRE, s))
        elif s in (Session.PRE_CLOSE, Session.NXT_AFTER):
            # Nextrade orders stay valid from the pre-market through the after-market.
            out.append(Moment(w.end, Due.EXPIRE, s))
    # At one instant the trade comes before the expiry (18:00: the last round, then lapse).
    order = {d: i for i, d in enumerate(Due)}
    return sorted(out, key=lambda m: (m.at, order[m.due]))


class SessionSchedule:
    """Hands out each moment once as the clock passes it (see the module docstring).

    Moments before ``start`` are skipped: a broker that starts (or restarts) mid-day does not
    replay a morning it did not see.
    """

    def __init__(self, start: datetime) -> None:
        self._after = start
        self._days: dict[date, list[Moment]] = {}

    def due(self, now: datetime) -> list[Moment]:
        """The moments in (last call, now], in order."""
        if now <= self._after:
            return []
        out: list[Moment] = []
        d = self._after.astimezone(krx.KST).date()
        last = now.astimezone(krx.KST).date()
        while d <= last:
            if d not in self._days:
                self._days = {k: v for k, v in self._days.items() if k >= d}
                self._days[d] = day_moments(d)
            out += [m for m in self._days[d] if self._after < m.at <= now]
            d = date.fromordinal(d.toordinal() + 1)
        self._after = now
        return out
