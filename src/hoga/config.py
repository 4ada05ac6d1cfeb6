"""Settings: ``HOGA_*`` environment variables over an optional TOML file over defaults.

The defaults are the embedded setup: SQLite in ``./var``, the paper broker, the simulated KRX
market in demo mode (trading around the clock), and the API on 127.0.0.1:8000.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

ENV_PREFIX = "HOGA_"
# Variables with these prefixes belong to the test suite and tools, not to the server.
_IGNORED_PREFIXES = ("HOGA_TEST_", "HOGA_BENCH_")
_NOT_SETTINGS = {"HOGA_CONFIG"}
# Settings that were removed because their meaning was unsafe: refused with what to use instead.
_RETIRED = {
    "HOGA_TRUST_PROXY_HEADERS": "HOGA_TRUST_PROXY_HEADERS is gone: it believed X-Forwarded-For "
    "from anyone. Name your reverse proxies instead: HOGA_TRUSTED_PROXIES=10.0.0.5/32,...",
}


class ConfigError(Exception):
    """A setting is unknown or invalid; the message names it and says what to fix."""


_file_values: ContextVar[dict[str, Any] | None] = ContextVar(
    "hoga_config_file_values", default=None
)


class _FileSource(PydanticBaseSettingsSource):
    """Values from the TOML config file, below the environment in precedence."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        values = _file_values.get() or {}
        return values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_values.get() or {})


class Settings(BaseSettings):
    """Every knob of a hoga server. Field ``foo_bar`` is ``HOGA_FOO_BAR`` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", case_sensitive=False, validate_default=True
    )

    # --- where things live
    data_dir: Path = Field(Path("var"), description="SQLite database, key files, paper book")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite+aiosqlite:///<data_dir>/hoga.db"
    )
    database_app_role: str | None = Field(
        None,
        description="PostgreSQL role of user requests (no owner, no BYPASSRLS); "
        "default <database>_app",
    )
    database_system_role: str | None = Field(
        None,
        description="PostgreSQL role of system work (dispatcher, reconciliation, admin pages); "
        "default <database>_system",
    )
    database_owner_url: str | None = Field(
        None,
        description="PostgreSQL login that owns the schema and runs migrations; when set, "
        "HOGA_DATABASE_URL logs in as the app role and HOGA_DATABASE_SYSTEM_URL as the "
        "system role",
    )
    database_system_url: str | None = Field(
        None, description="PostgreSQL login of the system role (with HOGA_DATABASE_OWNER_URL)"
    )
    database_allow_superuser: bool = Field(
        False,
        description="development and tests only: let the server log in as a PostgreSQL "
        "superuser and switch roles per transaction",
    )
    database_wait: float = Field(
        0.0,
        ge=0,
        description="seconds hoga serve keeps retrying an unreachable database at start "
        "(containers: the database may start later); 0 = fail at once",
    )
    # --- cluster mode (docs/scaling.md): several servers on one PostgreSQL and one NATS
    cluster_nats_url: str | None = Field(
        None,
        description="NATS server (with JetStream) shared by the servers of one cluster, e.g. "
        "nats://127.0.0.1:4222; unset = one server per database (the single-server guard)",
    )
    cluster_instance_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="this server's name in the cluster; default <hostname>-<pid>",
    )
    cluster_lease_ttl: float = Field(
        9.0,
        ge=2.0,
        le=120.0,
        description="seconds a dead server's leases (users, broker keys, the feed) outlive it; "
        "a server that cannot renew stops that work after two thirds of this",
    )
    cluster_prefix: str = Field(
        "hoga",
        pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="first token of every NATS subject and key-value bucket of this cluster "
        "(two clusters, or two test runs, on one NATS server use different prefixes)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # --- logs, metrics, backups, alerts (docs/operations.md "Metrics, logs and alerts")
    log_format: Literal["text", "json"] = Field("text", description="json = one JSON object a line")
    log_file: Path | None = Field(None, description="also log to this file, rotated by size")
    log_file_max_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="rotate at this size")
    log_file_keep: int = Field(5, ge=0, description="rotated log files kept")
    log_repeat_window: float = Field(
        60.0, ge=0, description="seconds a repeated warning is collapsed into one line (0 = off)"
    )
    metrics_address: str | None = Field(
        None,
        description="host:port of a separate /metrics listener without auth (loopback or a "
        "private network); /metrics on the API needs an admin token either way",
    )
    backup_dir: Path | None = Field(None, description="scheduled backups go here; unset = none")
    backup_keep: int = Field(7, ge=1, description="scheduled backups kept (older are deleted)")
    backup_at: str = Field(
        "03:30",
        description="when scheduled backups run: HH:MM daily in KST, or an interval like 6h / 30m",
    )
    disk_alert_percent: float = Field(
        5.0, ge=0, le=100, description="admin alert when the data dir's disk has less free (%)"
    )

    # --- HTTP
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="allowed browser origins, comma-separated"
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDRs of reverse proxies whose X-Forwarded-For is believed, comma-separated; "
        "none: forwarding headers are ignored",
    )

    # --- accounts and security
    allow_custom_broker_urls: bool = Field(
        False,
        description="let users point broker accounts at other hosts (hoga fake-broker, a "
        "proxy); only those in HOGA_BROKER_URL_HOSTS",
    )
    broker_url_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="hosts (host or host:port, comma-separated) custom broker URLs may name",
    )
    admin_username: str = "admin"
    admin_password: SecretStr | None = Field(None, description="first-start admin password")
    master_key: SecretStr | None = Field(
        None, description="base64 32-byte vault key; default: <data_dir>/master.key (0600)"
    )
    jwt_secret: SecretStr | None = Field(
        None, description="token signing key; default: <data_dir>/jwt.key (0600)"
    )
    access_token_ttl: int = Field(900, ge=30, description="seconds")
    refresh_token_ttl: int = Field(14 * 24 * 3600, ge=300, description="seconds")
    max_users: int = Field(10, ge=1)
    login_max_failures: int = Field(5, ge=1, description="failures before a lock")
    login_lock_seconds: int = Field(900, ge=1)

    # --- market data
    market_mode: Literal["demo", "calendar"] = Field(
        "demo", description="demo trades around the clock; calendar follows KRX sessions"
    )
    feed: Literal["simulator", "replay", "kis", "kiwoom", "kiwoom_openapi"] = "simulator"
    replay_file: Path | None = None
    replay_speed: float = Field(1.0, gt=0)
    sim_seed: int = 20240125
    sim_ticks_per_second: float = Field(200.0, gt=0, le=1_000_000)
    sim_symbols_per_session: int = Field(0, ge=0, description="0 = no per-session cap")
    sim_max_sessions: int = Field(0, ge=0, description="0 = unlimited")
    hub_grace_seconds: float = Field(30.0, ge=0)
    hub_stale_seconds: float = Field(10.0, gt=0)
    ws_max_symbols: int = Field(200, ge=1, description="per market-data connection")
    ws_max_connections: int = Field(5, ge=1, description="per user")
    ws_compression: bool = Field(
        False,
        description="permessage-deflate on WebSockets: less traffic, several times the CPU "
        "per quote sent (off: the fan-out is CPU-bound on a small server)",
    )

    # --- trading
    paper_initial_cash: int = Field(10_000_000, ge=0)
    commission_rate: Decimal = Field(Decimal("0.00015"), ge=0, lt=1)
    max_order_value: int = Field(50_000_000, gt=0, description="won, per order, default per user")
    daily_loss_limit: int = Field(0, ge=0, description="won; 0 disables")
    max_quote_age: float = Field(
        60.0,
        ge=0,
        description="seconds; a market order is refused when the last quote is older while "
        "the market is open (0 disables)",
    )
    duplicate_window: float = Field(2.0, ge=0, description="seconds")
    global_order_rate: float = Field(10.0, gt=0, description="orders/s, all brokers")
    kis_real_rate: float = Field(18.0, gt=0)
    kis_mock_rate: float = Field(1.0, gt=0)
    kiwoom_rate: float = Field(5.0, gt=0)
    # --- KIS adapter and market data
    kis_request_timeout: float = Field(
        8.0, gt=0, description="seconds before an unanswered KIS request counts as lost"
    )
    kis_feed_accounts: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="account ids whose KIS app keys carry market data (feed=kis), comma-separated",
    )
    kiwoom_feed_accounts: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="account ids whose Kiwoom app keys carry market data (feed=kiwoom), comma-separated",
    )
    kiwoom_feed_symbols_per_session: int = Field(
        40, ge=1, le=1000, description="Kiwoom publishes no cap; 40 is a conservative guess"
    )
    # --- Kiwoom OpenAPI+ through hoga-bridge (docs/kiwoom-openapi.md)
    kiwoom_openapi_switch_cost: float = Field(
        3.0,
        ge=0,
        description="seconds a user switch at the bridge takes (measure; see the bridge's status)",
    )
    kiwoom_openapi_ca_file: Path | None = Field(
        None, description="CA certificate trusted for wss:// bridges with a private CA"
    )
    kiwoom_openapi_feed_account: int | None = Field(
        None,
        description="account id of a linked kiwoom_openapi account whose bridge carries market data (feed=kiwoom_openapi)",
    )
    kis_feed_book: bool = Field(
        False, description="also subscribe order books (2 registrations/symbol)"
    )
    # --- instrument master (marketdata/instruments.py)
    symbols_sync_at: str = Field(
        "07:30",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^off$",
        description="KST HH:MM of the daily instrument-master sync before the session, or off",
    )
    symbols_source: str = Field(
        "auto",
        pattern=r"^(auto|kis|kiwoom)$",
        description="where the master comes from: kis (master files), kiwoom (ka10099), auto",
    )
    kis_master_url: str = Field(
        "https://new.real.download.dws.co.kr/common/master",
        description="where KIS publishes kospi_code.mst.zip/kosdaq_code.mst.zip (a fake's URL in tests)",
    )
    designation_policy: str = Field(
        "caution=allow,warning=warn,risk=refuse,admin=warn,liquidation=refuse",
        description="allow/warn/refuse buys of designated symbols (투자주의/경고/위험, 관리, 정리매매)",
    )
    quote_cache_seconds: float = Field(
        2.0, ge=0, description="how long an on-demand broker quote or order book is reused"
    )
    queue_max_wait: float = Field(30.0, gt=0, description="aging bound, seconds")
    session_time_slice: float = Field(30.0, gt=0, description="seconds per session batch")
    submit_timeout: float = Field(10.0, gt=0, description="seconds before UNKNOWN")
    reconcile_interval: float = Field(30.0, gt=0)
    paper_faults: str = Field(
        "", description="chaos testing only: e.g. 'accept_then_timeout=1,delay=0.2'"
    )

    @field_validator("paper_faults")
    @classmethod
    def _check_faults(cls, v: str) -> str:
        allowed = {
            "delay",
            "reject_next",
            "not_processed_next",
            "accept_then_timeout",
            "cancel_delay",
        }
        for part in (p.strip() for p in v.split(",") if p.strip()):
            key, _, value = part.partition("=")
            if key not in allowed:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(allowed))}")
            try:
                float(value)
            except ValueError:
                raise ValueError(f"fault {key} needs a number, got {value!r}") from None
        return v

    @field_validator("backup_at")
    @classmethod
    def _check_backup_at(cls, v: str) -> str:
        from hoga.ops.schedule import parse_backup_at

        parse_backup_at(v)
        return v

    @field_validator("metrics_address")
    @classmethod
    def _check_metrics_address(cls, v: str | None) -> str | None:
        if v:
            host, sep, port = v.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError(f"expected host:port, got {v!r}")
        return v

    @field_validator("designation_policy")
    @classmethod
    def _check_designation_policy(cls, v: str) -> str:
        from hoga.execution.risk import parse_designation_policy

        parse_designation_policy(v)
        return v

    @field_validator("kis_feed_accounts", "kiwoom_feed_accounts", mode="before")
    @classmethod
    def _split_ids(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [int(x) for x in v.replace(" ", "").split(",") if x]
        if isinstance(v, int):
            return [v]
        return v

    @field_validator("broker_url_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [h.strip() for h in v.split(",") if h.strip()]
        return v

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, v: list[str]) -> list[str]:
        from hoga.security.proxies import parse_networks

        return [str(n) for n in parse_networks(v)]

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [o.strip() for o in v.split(",") if o.strip()]
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments, then the environment, then the config file.
        return (init_settings, env_settings, _FileSource(settings_cls))

    # --- derived
    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hoga.db').resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.sqlalchemy_url.startswith("postgresql")

    def database_options(self) -> dict[str, Any]:
        """Keyword arguments of ``store.db.Database`` for these settings."""
        return {
            "app_role": self.database_app_role,
            "system_role": self.database_system_role,
            "owner_url": self.database_owner_url,
            "system_url": self.database_system_url,
            "allow_superuser": self.database_allow_superuser,
        }


def _field_env_names() -> dict[str, str]:
    return {f"{ENV_PREFIX}{name.upper()}": name for name in Settings.model_fields}


def _check_unknown_env(environ: dict[str, str]) -> None:
    known = _field_env_names()
    for key in environ:
        k = key.upper()
        if k in _RETIRED:
            raise ConfigError(_RETIRED[k])
        if not k.startswith(ENV_PREFIX) or k in known or k in _NOT_SETTINGS:
            continue
        if k.startswith(_IGNORED_PREFIXES):
            continue
        hint = difflib.get_close_matches(k, list(known), n=1)
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        raise ConfigError(f"unknown setting {key}{suggestion}")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    section = data.get("hoga", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [hoga] must be a table")
    for key in section:
        retired = _RETIRED.get(f"{ENV_PREFIX}{str(key).upper()}")
        if retired:
            raise ConfigError(f"config file {path}: {retired}")
        if key not in Settings.model_fields:
            hint = difflib.get_close_matches(key, list(Settings.model_fields), n=1)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            raise ConfigError(f"config file {path}: unknown setting {key!r}{suggestion}")
    return section


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    name = ".".join(str(p) for p in first["loc"]) or "settings"
    env = f"{ENV_PREFIX}{name.upper()}"
    return f"setting {env}: {first['msg']}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from overrides, ``HOGA_*`` variables and an optional TOML file.

    The file comes from ``config_file`` or ``HOGA_CONFIG``; its keys may sit at the top level
    or under ``[hoga]``. Raises ConfigError with a one-line explanation for unknown or invalid
    settings.
    """
    _check_unknown_env(dict(os.environ))
    env_path = os.environ.get("HOGA_CONFIG")
    path = config_file or (Path(env_path) if env_path else None)
    token = _file_values.set(_read_file(path) if path else {})
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(_describe(e)) from None
    except SettingsError as e:
        raise ConfigError(str(e)) from None
    finally:
        _file_values.reset(token)
