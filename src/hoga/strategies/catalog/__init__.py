"""The built-in strategies. Each module documents its rules; tests on crafted data prove them."""

from __future__ import annotations

from typing import Any

from hoga.strategies.base import Strategy
from hoga.strategies.catalog.bollinger import Bollinger
from hoga.strategies.catalog.rebalance import Rebalance
from hoga.strategies.catalog.rsi_reversion import RsiReversion
from hoga.strategies.catalog.sma_cross import SmaCross
from hoga.strategies.catalog.volatility_breakout import VolatilityBreakout

BUILTINS: tuple[type[Strategy[Any]], ...] = (
    SmaCross,
    RsiReversion,
    VolatilityBreakout,
    Bollinger,
    Rebalance,
)
