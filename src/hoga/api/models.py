"""Request bodies. Unknown fields are refused; sizes are bounded; types are strict."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from hoga.api.bounds import MAX_CSV_UPLOAD, MAX_ID, MAX_INT


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginBody(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    otp: str | None = Field(None, max_length=32)


class RefreshBody(Body):
    refresh_token: str = Field(min_length=10, max_length=256)


class LogoutBody(Body):
    refresh_token: str | None = Field(None, max_length=256)


class PasswordBody(Body):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class TotpConfirmBody(Body):
    code: str = Field(min_length=6, max_length=16)


class TotpDisableBody(Body):
    password: str = Field(min_length=1, max_length=256)
    code: str = Field(min_length=6, max_length=32)


class AllowlistBody(Body):
    entries: list[str] = Field(max_length=50)


class UserCreateBody(Body):
    username: str = Field(min_length=3, max_length=32)
    password: str = Field(min_length=1, max_length=256)
    tier: str = Field("free", max_length=32)
    is_admin: StrictBool = False


class UserUpdateBody(Body):
    tier: str | None = Field(None, max_length=32)
    is_active: StrictBool | None = None
    is_admin: StrictBool | None = None
    max_order_value: StrictInt | None = Field(None, gt=0, le=MAX_INT)
    daily_loss_limit: StrictInt | None = Field(None, ge=0, le=MAX_INT)
    trading_state: Literal["ACTIVE", "REDUCING", "HALTED"] | None = None
    api_calls_per_minute: StrictInt | None = Field(None, ge=1, le=100_000)


class TierUpdateBody(Body):
    daily_trades: StrictInt | None = Field(None, ge=0, le=1_000_000)
    max_strategies: StrictInt | None = Field(None, ge=0, le=1_000)
    max_positions: StrictInt | None = Field(None, ge=0, le=10_000)
    priority: Literal["normal", "vip"] | None = None
    api_calls_per_minute: StrictInt | None = Field(None, ge=1, le=100_000)


class KillSwitchBody(Body):
    state: Literal["ACTIVE", "REDUCING", "HALTED"]


class PauseBody(Body):
    reason: str | None = Field(None, max_length=200)


class AccountBody(Body):
    broker: Literal["paper", "kis", "kiwoom", "kiwoom_openapi"]
    env: Literal["real", "mock"]
    account_no: str = Field(min_length=8, max_length=20)
    app_key: str = Field(min_length=1, max_length=512)
    app_secret: str = Field(min_length=1, max_length=512)
    hts_id: str | None = Field(None, max_length=32)
    label: str | None = Field(None, max_length=64)
    base_url: str | None = Field(None, max_length=255)
    ws_url: str | None = Field(None, max_length=255)
    commission_rate: Decimal | None = Field(None, ge=0, lt=Decimal("0.01"))


class OrderBody(Body):
    symbol: str = Field(min_length=1, max_length=12)
    side: Literal["buy", "sell"]
    #: KRX order types (issue 14): limit 지정가, market 시장가, conditional 조건부지정가,
    #: best 최유리지정가, priority 최우선지정가, pre_close 장전 시간외, after_close 장후 시간외,
    #: single_price 시간외 단일가.
    type: Literal[
        "limit",
        "market",
        "conditional",
        "best",
        "priority",
        "pre_close",
        "after_close",
        "single_price",
    ] = "limit"
    # Bounded by the schema (issue 12); the order service checks what is sensible.
    qty: StrictInt = Field(ge=-MAX_INT, le=MAX_INT)
    price: StrictInt | None = Field(None, ge=-MAX_INT, le=MAX_INT)
    account_id: StrictInt | None = Field(None, ge=1, le=MAX_ID)
    client_order_id: str | None = Field(None, min_length=1, max_length=64)
    urgent: StrictBool = False
    tif: Literal["day", "ioc", "fok"] = "day"
    venue: Literal["KRX", "NXT", "SOR"] = "KRX"


class ModifyBody(Body):
    """A modify (정정): the new price and/or the new *total* quantity (at least one)."""

    # Only the 64-bit range here: zero or negative values get the service's own answer
    # (422 ``order.invalid_modify``), like every other modify that is not one.
    price: StrictInt | None = Field(None, ge=-MAX_INT, le=MAX_INT)
    quantity: StrictInt | None = Field(None, ge=-MAX_INT, le=MAX_INT)


# --- strategies and backtests (strategies branch) ---------------------------------------


class StrategyCreateBody(Body):
    name: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=64)
    symbols: list[str] = Field(min_length=1, max_length=50)
    params: dict[str, Any] = Field(default_factory=dict)
    account_id: StrictInt | None = Field(None, ge=1, le=MAX_ID)


class BacktestBody(Body):
    kind: str = Field(min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=12)
    params: dict[str, Any] = Field(default_factory=dict)
    cash: StrictInt = Field(10_000_000, gt=0, le=1_000_000_000_000)
    source: Literal["stored", "csv", "generated"] = "stored"
    csv: str | None = Field(None, max_length=MAX_CSV_UPLOAD)
    start: date | datetime | None = None
    end: date | datetime | None = None
    interval: Literal["1m", "1d"] | None = None
