"""The risk gate: one function every order passes, whoever sends it.

``check`` is pure: the order service gathers a ``RiskInputs`` snapshot inside the same
transaction that will record the order (so two orders cannot both spend the same cash), and
the gate answers with a ``RiskDecision``: accepted (with the cash it reserves and its queue
class) or denied with a stable code and a message in Korean and English.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from hoga.domain import krx
from hoga.domain.market import Instrument
from hoga.domain.orders import TIF_TYPES, OrderIntent, OrderType, Priority, Side, TimeInForce
from hoga.domain.tiers import Tier

DESIGNATION_LABELS: Final = {
    "caution": "투자주의",
    "warning": "투자경고",
    "risk": "투자위험",
    "admin": "관리",
    "liquidation": "정리매매",
}
#: The default ``HOGA_DESIGNATION_POLICY``: a buy of a 투자위험 or 정리매매 symbol is refused
#: (KRX itself restricts those most: single-price matching, a liquidation window), 투자경고 and
#: 관리종목 buys go through with a logged warning, 투자주의 is only a notice.
DEFAULT_DESIGNATION_POLICY: Final = (
    "caution=allow,warning=warn,risk=refuse,admin=warn,liquidation=refuse"
)


def parse_designation_policy(text: str) -> dict[str, str]:
    """``"risk=refuse,warning=warn"`` -> a mapping; ValueError names what is wrong."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, _, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if key not in DESIGNATION_LABELS:
            raise ValueError(f"unknown designation {key!r}; known: {', '.join(DESIGNATION_LABELS)}")
        if value not in ("allow", "warn", "refuse"):
            raise ValueError(f"{key}: expected allow, warn or refuse, got {value!r}")
        out[key] = value
    return out


ACTIVE: Final = "ACTIVE"
REDUCING: Final = "REDUCING"
HALTED: Final = "HALTED"


@dataclass(frozen=True, slots=True)
class RiskInputs:
    """Everything the gate looks at, read in one transaction."""

    intent: OrderIntent
    instrument: Instrument
    last_price: int | None
    tier: Tier
    user_state: str
    server_state: str
    market_open: bool
    trades_today: int
    max_order_value: int
    daily_loss_limit: int
    daily_pnl: int
    cash: int
    reserved_cash: int
    held_qty: int
    open_sell_qty: int
    held_symbols: frozenset[str]
    pending_buy_symbols: frozenset[str]
    commission_rate: object = krx.DEFAULT_COMMISSION_RATE
    duplicate: bool = False
    marks: Mapping[str, int] = field(default_factory=dict)
    #: Seconds since the symbol's last quote (None: no quote at all).
    quote_age: float | None = None
    #: A market order needs a quote younger than this while the market is open (0: no check).
    max_quote_age: float = 0.0
    #: The session that takes this order now (``krx.Session`` value, see ``order_session``);
    #: None: no open session accepts its type/time in force on its venue.
    session: str | None = krx.Session.CONTINUOUS.value
    #: Today's closing price, for the after-hours single-price band (None: the last price).
    close_price: int | None = None
    #: What to do with a buy of a designated symbol: designation -> allow / warn / refuse
    #: (``designation_policy``; missing designations are allowed).
    designation_policy: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RiskDecision:
    ok: bool
    code: str = ""
    message: str = ""
    reserved_cash: int = 0
    priority: Priority = Priority.NORMAL
    #: The daily loss limit is breached: the user must be switched to REDUCING.
    breach: bool = False
    #: Accepted with a caution the caller logs (a designation under the "warn" policy).
    warning: str = ""


def _deny(code: str, message: str, *, breach: bool = False) -> RiskDecision:
    return RiskDecision(ok=False, code=code, message=message, breach=breach)


def priority_for(intent: OrderIntent, tier: Tier) -> Priority:
    if intent.urgent:
        return Priority.URGENT
    return Priority.VIP if tier.priority == "vip" else Priority.NORMAL


def reserve_for(
    intent: OrderIntent, instrument: Instrument, commission_rate: object, close: int | None = None
) -> int:
    """Cash a buy holds back while it is open: value at the limit - or, for the market-like
    types (market, best, priority), at the day's upper limit, as KIS does; closing-price
    orders at their fixed price - plus commission."""
    if intent.side != Side.BUY:
        return 0
    upper = krx.price_limits(instrument.base_price, instrument.kind)[1]
    fixed = krx.fixed_price(intent.type.value, instrument.base_price, close)
    if intent.type.needs_price:
        assert intent.price is not None
        price = intent.price
    elif fixed is not None:
        price = fixed
    else:
        price = upper
    amount = intent.qty * price
    return amount + krx.commission(amount, commission_rate)  # type: ignore[arg-type]


def order_session(intent: OrderIntent, now: datetime, *, calendar: bool) -> str | None:
    """The session an order goes into now: by the KRX/Nextrade calendar (real money, and
    ``HOGA_MARKET_MODE=calendar``), or - in demo mode, which trades around the clock - the
    continuous session for the types it takes. None: nothing accepts it now."""
    if not calendar:
        s = krx.Session.CONTINUOUS
        ok = intent.type.value in krx.SESSION_TYPES[s]
        return s.value if ok else None
    found = krx.session_for_order(now, intent.type.value, intent.tif.value, intent.venue.value)
    return found.value if found is not None else None


def terms_problem(intent: OrderIntent) -> tuple[str, str] | None:
    """(code, message) when the order's type, time in force and venue do not go together."""
    if intent.tif != TimeInForce.DAY and intent.type not in TIF_TYPES:
        return (
            "order.bad_tif",
            f"IOC/FOK는 지정가·시장가·최유리 주문에만 붙일 수 있습니다 ({intent.type}) "
            "(IOC/FOK apply to limit, market and best orders only)",
        )
    return None


def check(r: RiskInputs) -> RiskDecision:
    i, inst = r.intent, r.instrument
    reduces = i.side == Side.SELL and i.qty <= r.held_qty - r.open_sell_qty

    # Kill switches: HALTED stops everything new; REDUCING lets only position-shrinking orders in.
    if r.server_state == HALTED:
        return _deny(
            "risk.halted", "서버 전체 거래가 중지되었습니다 (trading halted for the whole server)"
        )
    if r.user_state == HALTED:
        return _deny(
            "risk.user_halted", "이 계정의 거래가 중지되었습니다 (trading halted for your account)"
        )
    breach = r.daily_loss_limit > 0 and r.daily_pnl <= -r.daily_loss_limit
    if (REDUCING in (r.server_state, r.user_state) or breach) and not reduces:
        if breach:
            return _deny(
                "risk.daily_loss",
                f"일일 손실 한도({r.daily_loss_limit:,}원)에 도달해 포지션 축소 주문만 가능합니다 "
                f"(daily loss limit reached: only reducing orders)",
                breach=True,
            )
        return _deny("risk.reducing_only", "포지션을 줄이는 주문만 가능합니다 (reduce-only mode)")
    if not r.market_open:
        return _deny("risk.market_closed", "장 운영시간이 아닙니다 (market closed)")
    problem = terms_problem(i)
    if problem is not None:
        return _deny(*problem)
    if r.session is None:
        return _deny(
            "risk.not_in_session",
            f"지금 받을 수 없는 주문 유형입니다: {i.type}/{i.tif} ({i.venue}) "
            "(no session open now takes this order type on this venue)",
        )
    if inst.halted:
        return _deny(
            "risk.symbol_halted",
            f"{inst.symbol} 종목은 거래정지 상태입니다 (trading in this symbol is halted)",
        )
    warning = ""
    if inst.designation and i.side == Side.BUY:
        # Selling out of a designated symbol is always allowed: the policy limits new risk.
        action = r.designation_policy.get(inst.designation, "allow")
        label = DESIGNATION_LABELS.get(inst.designation, inst.designation)
        if action == "refuse":
            return _deny(
                "risk.designated",
                f"{inst.symbol} 종목은 {label} 종목이라 매수할 수 없습니다 "
                f"(buying a symbol designated {inst.designation} is refused by policy)",
            )
        if action == "warn":
            warning = f"{inst.symbol}: {label} ({inst.designation})"

    if inst.base_price <= 0:
        # A broker feed has not yet delivered this symbol today: without the reference price
        # neither the limit band nor a market order's cost can be known.
        return _deny(
            "risk.no_quote",
            f"{inst.symbol} 종목의 오늘 기준가를 아직 받지 못했습니다. 시세를 구독한 뒤 다시 "
            "주문하세요 (no live quote for this symbol yet: subscribe to it first)",
        )
    if (
        i.type.market_like
        and r.max_quote_age > 0
        and (r.quote_age is None or r.quote_age > r.max_quote_age)
    ):
        # The feed (or the broker behind it) may be down: a market order would fill at a
        # price nobody has seen. A limit order states its price and stays allowed.
        age = (
            "없음 (none)"
            if r.quote_age is None
            else f"{r.quote_age:,.0f}초 전 ({r.quote_age:,.0f}s old)"
        )
        return _deny(
            "risk.stale_quote",
            f"{inst.symbol} 종목의 최근 시세가 {age}입니다: 시세가 {r.max_quote_age:,.0f}초보다 "
            "오래되어 시장가 주문을 받지 않습니다. 지정가로 주문하세요 (last quote too old for a "
            "market order; use a limit order)",
        )
    if i.type.needs_price:
        if i.price is None:
            return _deny(
                "order.price_required", "가격이 필요한 주문입니다 (this order needs a price)"
            )
        if i.price % krx.tick_size(i.price, inst.kind):
            tick = krx.tick_size(i.price, inst.kind)
            return _deny(
                "risk.off_tick",
                f"호가단위({tick:,}원)에 맞지 않는 가격입니다: {i.price:,}원 (price off the tick grid)",
            )
        lower, upper = krx.price_limits(inst.base_price, inst.kind)
        if not lower <= i.price <= upper:
            return _deny(
                "risk.outside_limits",
                f"가격제한폭을 벗어났습니다: 하한 {lower:,}원 ~ 상한 {upper:,}원 (outside the day's limits)",
            )
        if i.type == OrderType.SINGLE_PRICE:
            close = r.close_price or r.last_price or inst.base_price
            lower, upper = krx.single_price_band(close, inst.base_price, inst.kind)
            if not lower <= i.price <= upper:
                return _deny(
                    "risk.outside_single_price_band",
                    f"시간외 단일가는 종가 ±10% 안에서만 주문할 수 있습니다: {lower:,}원 ~ "
                    f"{upper:,}원 (after-hours single price: within 10% of the close)",
                )

    if r.trades_today >= r.tier.daily_trades:
        return _deny(
            "risk.daily_trade_limit",
            f"오늘의 주문 한도({r.tier.daily_trades}건, {r.tier.name} 등급)를 모두 사용했습니다 "
            f"(daily trade limit of {r.tier.daily_trades} reached)",
        )

    ref_price = i.price if i.price is not None else (r.last_price or inst.base_price)
    value = i.qty * ref_price
    if value > r.max_order_value:
        return _deny(
            "risk.order_value",
            f"주문금액 {value:,}원이 1회 한도 {r.max_order_value:,}원을 넘습니다 (order value over limit)",
        )
    if r.duplicate:
        return _deny(
            "risk.duplicate",
            "같은 주문이 방금 접수되었습니다. 의도한 것이라면 client_order_id를 다르게 지정하세요 "
            "(duplicate order)",
        )
    if (
        i.side == Side.BUY
        and i.symbol not in r.held_symbols
        and i.symbol not in r.pending_buy_symbols
    ):
        open_symbols = len(r.held_symbols | r.pending_buy_symbols)
        if open_symbols >= r.tier.max_positions:
            return _deny(
                "risk.max_positions",
                f"보유 종목 수 한도({r.tier.max_positions}종목)에 도달했습니다 (max open positions reached)",
            )
    reserved = reserve_for(i, inst, r.commission_rate, r.close_price or r.last_price)
    if i.side == Side.BUY and reserved > r.cash - r.reserved_cash:
        return _deny(
            "risk.insufficient_cash",
            f"주문가능금액이 부족합니다: 필요 {reserved:,}원, 가능 {r.cash - r.reserved_cash:,}원 "
            "(insufficient cash)",
        )
    if i.side == Side.SELL and not reduces:
        return _deny(
            "risk.insufficient_shares",
            f"매도가능수량이 부족합니다: 보유 {r.held_qty}주, 매도 대기 {r.open_sell_qty}주 (insufficient shares)",
        )
    return RiskDecision(
        ok=True,
        reserved_cash=reserved,
        priority=priority_for(i, r.tier),
        breach=breach,
        warning=warning,
    )
