"""JSON shapes of the answers, built from the services' records (the response models in
``api/schemas/`` declare them; services return records, not dicts)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hoga.domain.market import Bar, OrderBook, Tick
from hoga.domain.tiers import Tier
from hoga.notify.store import Channel
from hoga.store.repos.accounts import AccountRecord
from hoga.store.repos.audit import AuditEntry
from hoga.store.repos.users import UserRecord


def tier_view(t: Tier) -> dict[str, Any]:
    return {
        "name": t.name,
        "daily_trades": t.daily_trades,
        "max_strategies": t.max_strategies,
        "max_positions": t.max_positions,
        "priority": t.priority,
        "api_calls_per_minute": t.api_calls_per_minute,
    }


def user_view(u: UserRecord, tier: Tier | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": u.id,
        "username": u.username,
        "tier": u.tier,
        "is_admin": u.is_admin,
        "is_active": u.is_active,
        "totp_enabled": u.totp_enabled,
        "ip_allowlist": u.ip_allowlist,
        "trading_state": u.trading_state,
        "max_order_value": u.max_order_value,
        "daily_loss_limit": u.daily_loss_limit,
        "created_at": u.created_at.isoformat(),
    }
    if tier is not None:
        out["limits"] = tier_view(tier)
    return out


def audit_view(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "user_id": e.user_id,
        "actor_id": e.actor_id,
        "ts": e.ts.isoformat(),
        "action": e.action,
        "target": e.target,
        "ip": e.ip,
        "detail": e.detail,
    }


def iso(ts: float) -> str:
    from hoga.domain.clock import KST

    return datetime.fromtimestamp(ts, KST).isoformat()


def quote_view(t: Tick) -> dict[str, Any]:
    change = t.price - t.base_price if t.base_price else 0
    return {
        "type": "quote",
        "symbol": t.symbol,
        "price": t.price,
        "volume": t.volume,
        "cum_volume": t.cum_volume,
        "bid": t.bid,
        "ask": t.ask,
        "bid_size": t.bid_size,
        "ask_size": t.ask_size,
        "base_price": t.base_price,
        "change": change,
        "change_pct": round(change * 100 / t.base_price, 2) if t.base_price else 0.0,
        "ts": iso(t.ts),
    }


def orderbook_view(b: OrderBook, last: int | None) -> dict[str, Any]:
    """The order-book body of ``GET /api/market/orderbook`` and the WS ``orderbook`` push
    (contracts.md): levels best-first, ``last`` the last trade price or None."""
    return {
        "symbol": b.symbol,
        "ts": iso(b.ts),
        "asks": [{"price": p, "qty": q} for p, q in b.asks],
        "bids": [{"price": p, "qty": q} for p, q in b.bids],
        "total_ask_qty": b.total_ask_qty,
        "total_bid_qty": b.total_bid_qty,
        "last": last,
    }


def bar_view(b: Bar) -> dict[str, Any]:
    return {
        "start": iso(b.start),
        "interval": b.interval,
        "open": b.open,
        "high": b.high,
        "low": b.low,
        "close": b.close,
        "volume": b.volume,
    }


def account_view(acct: AccountRecord, cash: int | None = None) -> dict[str, Any]:
    """A linked broker account: masked values only, never ciphertext or secrets."""
    return {
        "id": acct.id,
        "broker": acct.broker,
        "env": acct.env,
        "label": acct.label,
        "account_no": acct.account_masked,
        "app_key": acct.app_key_masked,
        "app_secret": "****" if acct.secrets_enc else None,
        "commission_rate": str(acct.commission_rate),
        "base_url": acct.base_url,
        "cash": cash,
        "last_test": None
        if acct.last_test_at is None
        else {
            "at": acct.last_test_at.isoformat(),
            "ok": acct.last_test_ok,
            "message": acct.last_test_message,
        },
        "created_at": acct.created_at.isoformat(),
    }


def channel_view(c: Channel) -> dict[str, Any]:
    """A notification channel: its target masked (the URL stays in the vault)."""
    return {
        "id": c.id,
        "kind": c.kind,
        "label": c.label,
        "target_masked": c.target_masked,
        "events": c.events,
        "enabled": c.enabled,
        "last_error": c.last_error,
        "last_sent_at": c.last_sent_at.isoformat() if c.last_sent_at else None,
    }
