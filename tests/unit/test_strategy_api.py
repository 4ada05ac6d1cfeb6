"""The strategy API: plugin discovery, parameter validation, and the Context's own rules."""

from __future__ import annotations

import pytest

from hoga.domain.errors import InvalidInput
from hoga.domain.portfolio import Position
from hoga.strategies.base import Context, Fill, Strategy, StrategyParams
from hoga.strategies.registry import load_catalog
from tests.plugins import plug_in


class Plugged(Strategy[StrategyParams]):
    kind = "plugged"
    name = "플러그인"
    name_en = "Plugged in"


class NotAStrategy:
    kind = "nope"


def test_entry_point_plugins_join_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    plug_in(
        monkeypatch,
        ("plugged", f"{__name__}:Plugged"),
        ("broken", "no_such_module_anywhere:Thing"),
        ("wrong", f"{__name__}:NotAStrategy"),
        ("dup", "hoga.strategies.catalog.sma_cross:SmaCross"),
    )
    catalog = load_catalog()
    assert catalog.kinds() == [
        "sma_cross",
        "rsi_reversion",
        "volatility_breakout",
        "bollinger",
        "rebalance",
        "plugged",
    ]
    (plugged,) = [d for d in catalog.describe() if d["kind"] == "plugged"]
    assert plugged["name"] == "플러그인" and plugged["defaults"] == {}


def test_params_refusals_name_the_field() -> None:
    catalog = load_catalog(plugins=False)
    with pytest.raises(InvalidInput) as e:
        catalog.params("sma_cross", {"fast": 20, "slow": 20})
    assert (e.value.code, e.value.details["field"]) == ("strategy.bad_params", "fast")
    with pytest.raises(InvalidInput) as e:
        catalog.params("sma_cross", {"qty": 0})
    assert e.value.details["field"] == "qty"
    with pytest.raises(InvalidInput) as e:
        catalog.params("sma_cross", {"qty": True})
    assert e.value.details["field"] == "qty"
    with pytest.raises(InvalidInput) as e:
        catalog.params("rsi_reversion", {"oversold": 70, "overbought": 30})
    assert e.value.details["field"] == "oversold"
    with pytest.raises(InvalidInput) as e:
        catalog.get("nope")
    assert e.value.code == "strategy.unknown_kind"
    schema = catalog.describe()[0]["params_schema"]
    assert schema["additionalProperties"] is False
    assert "slow" in schema["properties"]["fast"]["description"]


def _ctx() -> Context:
    return Context(strategy_id=1, symbols=["005930"], time=lambda: 1_770_000_000.0, id_prefix="t-")


def test_context_order_helpers() -> None:
    ctx = _ctx()
    cid = ctx.buy("005930", 5)
    assert [o.client_order_id for o in ctx.open_orders("005930")] == [cid]
    with pytest.raises(ValueError, match="not one of"):
        ctx.buy("000660", 1)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="qty"):
            ctx.buy("005930", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot sell"):
        ctx.sell("005930", 1)
    assert ctx.close("005930") is None
    ctx._apply_fill(Fill(cid, 7, "005930", "buy", 5, 1000, 0, 0, 1.0))  # positional: the API order
    assert ctx.position("005930") == Position(5, 5000, 0)
    assert ctx.open_orders() == []
    sell = ctx.sell("005930", 3)
    assert ctx.available_to_sell("005930") == 2
    close = ctx.close("005930")
    assert close is not None and ctx.available_to_sell("005930") == 0
    assert ctx.cancel(sell) and not ctx.cancel("unknown")
    assert [(r.action, r.qty) for r in ctx._take_outbox()] == [
        ("place", 5),
        ("place", 3),
        ("place", 2),
        ("cancel", 0),
    ]
    ctx._order_update(sell, "CANCELLED")
    assert [o.client_order_id for o in ctx.open_orders()] == [close]
    assert ctx.now().utcoffset() is not None
