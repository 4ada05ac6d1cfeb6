"""The arithmetic that keeps servers sharing a cap under it (``hoga.cluster.quotamath``)."""

from __future__ import annotations

from collections import deque

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hoga.cluster import quotamath as qm

SERVERS = ["a", "b", "c"]


def _total(record: qm.Record, now: float) -> int:
    return sum(h.n for h in qm.live(record, now).values())


@given(
    cap=st.integers(1, 50),
    ops=st.lists(
        st.tuples(
            st.sampled_from(SERVERS),
            st.sampled_from(["grant", "release", "time"]),
            st.integers(0, 60),
            st.integers(0, 60),
        ),
        max_size=60,
    ),
)
def test_live_holdings_never_exceed_the_cap(cap: int, ops: list[tuple[str, str, int, int]]) -> None:
    record: qm.Record = {}
    now = 0.0
    for me, op, x, y in ops:
        held = qm.live(record, now).get(me)
        mine = held.n if held else 0
        if op == "grant":
            new = qm.grant(record, me, cap, now, chunk=x, ceiling=max(1, y))
            assert new >= mine, "a grant only grows"
            record[me] = qm.Holding(new, now + 9.0)
        elif op == "release":
            new = qm.release_to(mine, x, y)
            assert new <= mine, "a release only shrinks"
            record[me] = qm.Holding(new, now + 9.0)
        else:
            now += x / 10  # time passes; holdings not renewed expire
        assert _total(record, now) <= cap


@given(record=st.dictionaries(st.sampled_from(SERVERS), st.integers(0, 30)), cap=st.integers(1, 40))
def test_the_record_survives_its_stored_form(record: dict[str, int], cap: int) -> None:
    rec = {k: qm.Holding(n, 1000.5) for k, n in record.items()}
    assert qm.decode(qm.encode(rec)) == rec
    assert qm.decode(b"not json") == {} and qm.decode(None) == {}
    assert qm.fair_share(cap, len(record)) >= 1


# A server that gave back slots it had used this window would let the next one overshoot:
_GAVE_BACK_USED = [("a", "grow")] * 2 + [("a", "use")] * 3 + [("a", "yield"), ("a", "release")]


@settings(max_examples=500)
@given(
    cap=st.integers(1, 6),
    steps=st.lists(
        st.tuples(
            st.sampled_from(SERVERS[:2]), st.sampled_from(["use", "grow", "yield", "release"])
        ),
        max_size=120,
    ),
)
@example(cap=3, steps=[*_GAVE_BACK_USED, ("b", "grow"), ("b", "use"), ("b", "use")])
def test_servers_following_the_rules_never_use_more_than_the_cap_in_any_window(
    cap: int, steps: list[tuple[str, str]]
) -> None:
    """Each server uses slots against what it allows itself, lowers that first and writes
    its holding down afterwards (never below what it used this window), and grows only by a
    grant; one step is one time unit, the window 20 units. Whatever the interleaving, the
    uses of all servers in any window stay within the cap."""
    window = 20
    record: qm.Record = {}
    held = dict.fromkeys(SERVERS[:2], 0)
    allowed = dict.fromkeys(SERVERS[:2], 0)
    uses: dict[str, deque[int]] = {s: deque() for s in SERVERS[:2]}
    every: list[int] = []
    for t, (me, op) in enumerate(steps):
        for q in uses.values():
            while q and q[0] + window <= t:
                q.popleft()
        if op == "use" and len(uses[me]) < allowed[me]:
            uses[me].append(t)
            every.append(t)
        elif op == "grow":
            new = qm.grant(record, me, cap, 0.0, chunk=2, ceiling=cap)
            record[me] = qm.Holding(new, 1e9)
            held[me] = allowed[me] = new
        elif op == "yield":
            allowed[me] = qm.keep_when_asked(allowed[me], len(uses[me]), qm.fair_share(cap, 2), 1)
        elif op == "release":
            held[me] = qm.release_to(held[me], allowed[me], len(uses[me]))
            record[me] = qm.Holding(held[me], 1e9)
        assert _total(record, 0.0) <= cap
    worst = max((sum(1 for u in every if s <= u < s + window) for s in every), default=0)
    assert worst <= cap


@given(
    allowed=st.integers(0, 50),
    used=st.integers(0, 50),
    fair=st.integers(1, 50),
    step=st.integers(1, 10),
)
def test_a_server_asked_for_slots_never_allows_itself_more(
    allowed: int, used: int, fair: int, step: int
) -> None:
    keep = qm.keep_when_asked(allowed, used, fair, step)
    assert keep <= allowed
    if used >= fair:
        assert keep >= min(allowed, fair), "a heavy user never goes below its fair share"
        assert keep >= allowed - step
    else:
        assert keep <= used + max(1, -(-fair // 8))
