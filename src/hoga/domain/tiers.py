"""Service tiers: what each user may do per day, and how their orders are prioritised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

TierPriority = Literal["normal", "vip"]


@dataclass(frozen=True, slots=True)
class Tier:
    """Limits of a tier. ``priority='vip'`` puts the tier's orders in the VIP queue class."""

    name: str
    daily_trades: int
    max_strategies: int
    max_positions: int
    priority: TierPriority = "normal"
    api_calls_per_minute: int = 600


SEED_TIERS: Final = (
    Tier("free", daily_trades=10, max_strategies=1, max_positions=5),
    Tier("basic", daily_trades=50, max_strategies=3, max_positions=10),
    Tier("premium", daily_trades=100, max_strategies=5, max_positions=20, priority="vip"),
)
