"""The schema as SQLAlchemy Core tables.

Every tenant table carries ``user_id``; on PostgreSQL each of them gets row-level security
(see ``store/rls.py``). Money columns are BigInteger won. Timestamps are stored in UTC and come
back timezone-aware.

The migrations in ``store/migrations/versions`` create exactly these tables; a test compares
the migrated database with this metadata so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from hoga.domain.clock import KST

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class AwareDateTime(TypeDecorator[datetime]):
    """UTC in the database, an aware KST datetime in Python, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        aware: datetime = value.astimezone(KST)
        return aware


def _id() -> Column[int]:
    return Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


def _user_fk(nullable: bool = False) -> Column[int]:
    return Column(
        "user_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=nullable,
        index=True,
    )


def _ref(name: str, target: str, nullable: bool = True, ondelete: str = "CASCADE") -> Column[int]:
    return Column(
        name,
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey(target, ondelete=ondelete),
        nullable=nullable,
    )


def _ts(name: str, nullable: bool = False) -> Column[datetime]:
    return Column(name, AwareDateTime(), nullable=nullable)


tiers = Table(
    "tiers",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("daily_trades", Integer, nullable=False),
    Column("max_strategies", Integer, nullable=False),
    Column("max_positions", Integer, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("api_calls_per_minute", Integer, nullable=False),
    _ts("updated_at"),
)

users = Table(
    "users",
    metadata,
    _id(),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("tier", String(32), ForeignKey("tiers.name"), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("totp_secret_enc", Text, nullable=True),
    Column("totp_enabled", Boolean, nullable=False, default=False),
    Column("ip_allowlist", JSON, nullable=False, default=list),
    Column("max_order_value", BigInteger, nullable=True),
    Column("daily_loss_limit", BigInteger, nullable=True),
    Column("trading_state", String(16), nullable=False, default="ACTIVE"),
    Column("api_calls_per_minute", Integer, nullable=True),
    _ts("created_at"),
    _ts("password_changed_at"),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    _id(),
    _user_fk(),
    Column("code_hash", String(128), nullable=False),
    _ts("created_at"),
    _ts("used_at", nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    _id(),
    _user_fk(),
    Column("family_id", String(64), nullable=False, index=True),
    Column("token_hash", String(128), nullable=False, unique=True),
    _ts("created_at"),
    _ts("expires_at"),
    _ts("used_at", nullable=True),
    _ts("revoked_at", nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(255), nullable=True),
)

broker_accounts = Table(
    "broker_accounts",
    metadata,
    _id(),
    _user_fk(),
    Column("broker", String(16), nullable=False),
    Column("env", String(8), nullable=False),
    Column("label", String(64), nullable=False),
    Column("account_masked", String(32), nullable=False),
    Column("app_key_masked", String(32), nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Column("secrets_enc", Text, nullable=True),
    Column("key_id", String(32), nullable=True),
    Column("commission_rate", String(16), nullable=False),
    # Running cash balance in won; the cash_ledger rows are its audit trail.
    Column("cash", BigInteger, nullable=False, default=0),
    Column("base_url", String(255), nullable=True),
    Column("ws_url", String(255), nullable=True),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("last_test_at", AwareDateTime(), nullable=True),
    Column("last_test_ok", Boolean, nullable=True),
    Column("last_test_message", String(255), nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
    UniqueConstraint("user_id", "fingerprint"),
)

broker_tokens = Table(
    "broker_tokens",
    metadata,
    _id(),
    _user_fk(),
    _ref("account_id", "broker_accounts.id", nullable=False),
    Column("kind", String(16), nullable=False),
    Column("token_enc", Text, nullable=False),
    Column("key_id", String(32), nullable=False),
    _ts("issued_at"),
    _ts("expires_at"),
    UniqueConstraint("account_id", "kind"),
)

strategies = Table(
    "strategies",
    metadata,
    _id(),
    _user_fk(),
    _ref("account_id", "broker_accounts.id", nullable=False),
    Column("name", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("symbols", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("error_at", AwareDateTime(), nullable=True),
    Column("state", JSON, nullable=False, default=dict),
    _ts("created_at"),
    _ts("updated_at"),
    UniqueConstraint("user_id", "name"),
)

orders = Table(
    "orders",
    metadata,
    _id(),
    _user_fk(),
    _ref("account_id", "broker_accounts.id", nullable=False),
    _ref("strategy_id", "strategies.id", nullable=True, ondelete="SET NULL"),
    Column("client_order_id", String(64), nullable=False),
    Column("symbol", String(8), nullable=False),
    Column("side", String(4), nullable=False),
    Column("type", String(16), nullable=False),
    # Time in force (day/ioc/fok) and venue (KRX/NXT/SOR); migration 0005.
    Column("tif", String(4), nullable=False, default="day", server_default="day"),
    Column("venue", String(4), nullable=False, default="KRX", server_default="KRX"),
    Column("qty", BigInteger, nullable=False),
    Column("price", BigInteger, nullable=True),
    Column("status", String(20), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("urgent", Boolean, nullable=False, default=False),
    Column("source", String(16), nullable=False),
    Column("filled_qty", BigInteger, nullable=False, default=0),
    Column("filled_amount", BigInteger, nullable=False, default=0),
    Column("commission", BigInteger, nullable=False, default=0),
    Column("tax", BigInteger, nullable=False, default=0),
    Column("reserved_cash", BigInteger, nullable=False, default=0),
    Column("broker_order_id", String(64), nullable=True),
    Column("broker_org_no", String(32), nullable=True),
    Column("reason_code", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    Column("trading_day", Date, nullable=False),
    _ts("created_at"),
    _ts("updated_at"),
    _ts("submitted_at", nullable=True),
    UniqueConstraint("user_id", "client_order_id"),
    Index("ix_orders_status", "status"),
    Index("ix_orders_account_id_broker_order_id", "account_id", "broker_order_id"),
    Index("ix_orders_user_id_trading_day", "user_id", "trading_day"),
    # The risk gate's exposure read and the recovery/reconciliation lists ask for one account's
    # open orders; without this they walked every order the user ever placed (migration 0007).
    Index("ix_orders_account_id_status", "account_id", "status"),
)

order_events = Table(
    "order_events",
    metadata,
    _id(),
    _user_fk(),
    _ref("order_id", "orders.id", nullable=False),
    _ts("ts"),
    Column("status", String(20), nullable=False),
    Column("detail", Text, nullable=True),
)

fills = Table(
    "fills",
    metadata,
    _id(),
    _user_fk(),
    _ref("account_id", "broker_accounts.id", nullable=False),
    _ref("order_id", "orders.id", nullable=False),
    _ref("strategy_id", "strategies.id", nullable=True, ondelete="SET NULL"),
    Column("broker_fill_id", String(64), nullable=False),
    Column("symbol", String(8), nullable=False),
    Column("side", String(4), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("commission", BigInteger, nullable=False),
    Column("tax", BigInteger, nullable=False),
    Column("trading_day", Date, nullable=False),
    _ts("ts"),
    UniqueConstraint("account_id", "broker_fill_id"),
    Index("ix_fills_order_id", "order_id"),
)

positions = Table(
    "positions",
    metadata,
    _user_fk(),
    _ref("account_id", "broker_accounts.id", nullable=False),
    Column("symbol", String(8), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("cost", BigInteger, nullable=False),
    Column("realized_pnl", BigInteger, nullable=False),
    _ts("updated_at"),
    PrimaryKeyConstraint("account_id", "symbol"),
)

cash_ledger = Table(
    "cash_ledger",
    metadata,
    _id(),
    _user_fk(),
    _ref("account_id", "broker_accounts.id", nullable=False),
    _ts("ts"),
    Column("amount", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    _ref("order_id", "orders.id", nullable=True, ondelete="SET NULL"),
    _ref("fill_id", "fills.id", nullable=True, ondelete="SET NULL"),
    Column("note", String(255), nullable=True),
    Index("ix_cash_ledger_account_id", "account_id"),
)

daily_counters = Table(
    "daily_counters",
    metadata,
    _user_fk(),
    Column("trading_day", Date, nullable=False),
    Column("trades", Integer, nullable=False, default=0),
    Column("realized_pnl", BigInteger, nullable=False, default=0),
    # Unrealised P&L when the day began, the baseline of the daily loss limit.
    Column("unrealized_start", BigInteger, nullable=True),
    PrimaryKeyConstraint("user_id", "trading_day"),
)

audit_log = Table(
    "audit_log",
    metadata,
    _id(),
    _user_fk(nullable=True),
    Column("actor_id", BigInteger().with_variant(Integer, "sqlite"), nullable=True),
    _ts("ts"),
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("detail", JSON, nullable=False, default=dict),
    Index("ix_audit_log_ts", "ts"),
)

# Sign-in changes other processes must apply (an outbox): a user disabled, a session ended.
# Written in the same transaction as the change by whoever makes it (API, CLI); every server
# polls it (security/changes.py) and drops its caches, stops strategies, closes WebSockets.
auth_changes = Table(
    "auth_changes",
    metadata,
    _id(),
    _user_fk(),
    Column("kind", String(32), nullable=False),
    Column("session_id", String(64), nullable=True),
    _ts("created_at"),
)

bars = Table(
    "bars",
    metadata,
    Column("symbol", String(8), primary_key=True),
    Column("interval", Integer, primary_key=True),
    Column("start", BigInteger, primary_key=True),
    Column("open", BigInteger, nullable=False),
    Column("high", BigInteger, nullable=False),
    Column("low", BigInteger, nullable=False),
    Column("close", BigInteger, nullable=False),
    Column("volume", BigInteger, nullable=False),
)

#: The instrument master (migration 0003): every listed symbol, refreshed from a broker.
instruments = Table(
    "instruments",
    metadata,
    Column("symbol", String(12), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("market", String(10), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("security_group", String(4), nullable=False),
    Column("std_code", String(12), nullable=False),
    Column("base_price", BigInteger, nullable=False),
    Column("listed_shares", BigInteger, nullable=False),
    Column("nxt", Boolean, nullable=False),
    Column("halted", Boolean, nullable=False),
    Column("admin_issue", Boolean, nullable=False),
    Column("warning", String(10), nullable=False),
    Column("liquidation", Boolean, nullable=False),
    Column("listed_on", String(8), nullable=False),
    Column("source", String(10), nullable=False),
    _ts("updated_at"),
)

system_state = Table(
    "system_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    _ts("updated_at"),
)

backtests = Table(
    "backtests",
    metadata,
    _id(),
    _user_fk(),
    Column("kind", String(64), nullable=False),
    Column("symbol", String(8), nullable=False),
    Column("params", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    _ts("created_at"),
    _ts("finished_at", nullable=True),
)

notification_channels = Table(
    "notification_channels",
    metadata,
    _id(),
    _user_fk(),
    Column("kind", String(16), nullable=False),
    Column("label", String(64), nullable=False),
    Column("target_masked", String(128), nullable=False),
    # The apprise URL (it carries tokens and passwords) as a vault envelope.
    Column("url_enc", Text, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("events", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("last_error", String(255), nullable=True),
    _ts("last_sent_at", nullable=True),
    _ts("created_at"),
    _ts("updated_at"),
)
# --- dashboard (web branch, migration 0006) ---
watchlist = Table(
    "watchlist",
    metadata,
    _user_fk(),
    Column("symbol", String(8), nullable=False),
    # The user's order of the list (0 first); the list is replaced whole by PUT.
    Column("position", Integer, nullable=False),
    _ts("added_at"),
    PrimaryKeyConstraint("user_id", "symbol"),
)
# --- end of dashboard ---

#: Tables whose rows belong to one user (row-level security applies to each).
TENANT_TABLES = tuple(t.name for t in metadata.sorted_tables if "user_id" in t.c)
