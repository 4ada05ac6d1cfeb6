"""The fakes' seeded fault plans: parsing, every-N-th, probabilities, stages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hoga.fakes.faults import AFTER, BEFORE, FaultPlan, FaultRule, parse_rule


def test_rules_parse_from_the_command_line_form() -> None:
    assert parse_rule("drop=0.05") == FaultRule("drop", probability=0.05)
    assert parse_rule(" HANG = every:7 ") == FaultRule("hang", every=7)
    plan = FaultPlan.parse(["http500=every:3", "truncate=1"], seed=4)
    assert plan.describe() == "http500=every:3, truncate=1"
    assert bool(plan) and not FaultPlan.parse([])


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("drop", "KIND=RATE"),
        ("=0.1", "KIND=RATE"),
        ("explode=0.1", "unknown fault"),
        ("drop=lots", "number"),
        ("drop=0", "above 0"),
        ("drop=1.5", "above 0"),
        ("drop=every:0", "N >= 1"),
        ("drop=every:x", "whole number"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(spec: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_rule(spec)


def test_one_kind_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="given twice"):
        FaultPlan.parse(["drop=0.1", "drop=every:2"])


@given(every=st.integers(1, 20), requests=st.integers(0, 300))
def test_every_n_fires_on_exactly_the_nth_requests(every: int, requests: int) -> None:
    plan = FaultPlan([FaultRule("hang", every=every)])
    fired = [n for n in range(1, requests + 1) if plan.after() == "hang"]
    assert fired == list(range(every, requests + 1, every))
    assert plan.fired["hang"] == requests // every


def test_probabilities_are_seeded_and_near_their_rate() -> None:
    def run(seed: int) -> list[str | None]:
        plan = FaultPlan.parse(["drop=0.2", "truncate=0.1"], seed=seed)
        return [plan.after() for _ in range(5000)]

    first = run(11)
    assert first == run(11)
    assert first != run(12)
    drops, cuts = first.count("drop"), first.count("truncate")
    assert 900 <= drops <= 1100  # 20% of 5,000
    # A request gets one fault: truncate fires only where drop did not.
    assert 350 <= cuts <= 450  # 10% of the 80% left


def test_stages_keep_to_their_own_faults() -> None:
    plan = FaultPlan.parse(["http500=1", "drop=1"])
    assert plan.before() == "http500" and plan.after() == "drop"
    assert BEFORE.isdisjoint(AFTER)
    assert plan.view() == {
        "rules": ["http500=1", "drop=1"],
        "seed": 1,
        "fired": {"drop": 1, "http500": 1},
    }
