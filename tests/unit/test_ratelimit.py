"""The sliding window never lets more than ``limit`` events into any window."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from hoga.domain.ratelimit import SlidingWindow, acquire_all


@given(
    st.integers(1, 20),
    st.floats(0.1, 2.0),
    st.lists(st.floats(0, 0.5), min_size=1, max_size=300),
)
# Found by hypothesis: with "t <= now - window" the event at 0.7 had left a 0.3 s window at
# 0.9999999999999999 (= 0.7 + 0.2 + 0.1 in floats; minus 0.3 is 0.7 again), although
# 0.7 + 0.3 = 1.0 - so a second event got into [0.7, 1.0).
@example(limit=1, window=0.3, gaps=[0.7, 0.2, 0.1, 0.7])
def test_no_window_ever_holds_more_than_the_limit(
    limit: int, window: float, gaps: list[float]
) -> None:
    w = SlidingWindow(limit, window)
    now = 0.0
    accepted: list[float] = []
    for gap in gaps:
        now += gap
        if w.try_acquire(now):
            accepted.append(now)
    for i, t in enumerate(accepted):
        inside = [u for u in accepted[i:] if u < t + window]
        assert len(inside) <= limit


def test_available_at_says_when_the_next_slot_opens() -> None:
    w = SlidingWindow(3, 1.0)
    for t in (0.0, 0.1, 0.2):
        assert w.try_acquire(t)
    assert not w.try_acquire(0.5)
    assert w.available_at(0.5) == 1.0
    assert w.try_acquire(1.0)


def test_fractional_rates_and_combined_limits() -> None:
    slow = SlidingWindow.per_second(0.5)
    assert (slow.limit, slow.window) == (1, 2.0)
    a, b = SlidingWindow(5, 1.0), SlidingWindow(2, 1.0)
    assert acquire_all([a, b], 0.0)
    assert acquire_all([a, b], 0.1)
    assert not acquire_all([a, b], 0.2)
    assert a.in_window(0.2) == 2  # a failed combined acquire takes nothing
