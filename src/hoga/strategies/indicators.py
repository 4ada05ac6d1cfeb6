"""Small incremental indicators with exact integer arithmetic.

Prices are integer won, so sums over a window are exact integers; comparisons of averages are
made by cross-multiplying (``fast_sum * slow > slow_sum * fast``) rather than in floating point,
which makes the signals reproducible to the last bar and checkable by hand.
"""

from __future__ import annotations

from collections import deque


class RollingSum:
    """Sum (and sum of squares) of the last ``n`` values pushed; ``full`` once ``n`` arrived."""

    __slots__ = ("_sq", "_window", "n", "sq", "total")

    def __init__(self, n: int, *, squares: bool = False) -> None:
        if n < 1:
            raise ValueError("a window holds at least one value")
        self.n = n
        self._window: deque[int] = deque()
        self._sq = squares
        self.total = 0
        self.sq = 0

    def push(self, x: int) -> None:
        w = self._window
        w.append(x)
        self.total += x
        if self._sq:
            self.sq += x * x
        if len(w) > self.n:
            old = w.popleft()
            self.total -= old
            if self._sq:
                self.sq -= old * old

    @property
    def full(self) -> bool:
        return len(self._window) == self.n

    def __len__(self) -> int:
        return len(self._window)


class GainLoss:
    """Sums of the up-moves and down-moves over the last ``n`` price changes (simple RSI)."""

    __slots__ = ("_prev", "gains", "losses")

    def __init__(self, n: int) -> None:
        self._prev: int | None = None
        self.gains = RollingSum(n)
        self.losses = RollingSum(n)

    def push(self, price: int) -> None:
        if self._prev is not None:
            change = price - self._prev
            self.gains.push(change if change > 0 else 0)
            self.losses.push(-change if change < 0 else 0)
        self._prev = price

    @property
    def full(self) -> bool:
        return self.gains.full

    def rsi_below(self, level: int) -> bool:
        """RSI < level, with RSI = 100 * gains / (gains + losses) (50 when nothing moved)."""
        g, lo = self.gains.total, self.losses.total
        if g + lo == 0:
            return level > 50
        return 100 * g < level * (g + lo)

    def rsi_above(self, level: int) -> bool:
        g, lo = self.gains.total, self.losses.total
        if g + lo == 0:
            return level < 50
        return 100 * g > level * (g + lo)

    def rsi(self) -> float:
        g, lo = self.gains.total, self.losses.total
        return 50.0 if g + lo == 0 else 100.0 * g / (g + lo)
