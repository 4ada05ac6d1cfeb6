"""The core every hoga process builds the same way: database, vault, tokens, users, accounts.

``HogaApp`` (``app.py``, the server) and ``AdminContext`` (``server/admin.py``, the CLI's
user, vault and pause commands) both start from ``build_core`` so the two cannot drift apart -
the same database role, vault key, JWT secret and account rules whichever process acts. The
server then adds brokers (``AccountService.brokers``), feeds, the order pipeline and the API
around it; the admin context uses it as is (no brokers: it never talks to one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hoga.brokers.base import Broker
from hoga.config import Settings
from hoga.domain.clock import Clock
from hoga.execution.accounts import AccountService
from hoga.security.auth import AuthService
from hoga.security.brokerurls import BrokerUrlPolicy
from hoga.security.throttle import LoginThrottle
from hoga.security.tokens import TokenService, load_or_create_secret
from hoga.security.vault import Vault, load_vault
from hoga.store.db import Database


@dataclass(slots=True)
class Core:
    """The parts ``build_core`` wires (see the module docstring)."""

    clock: Clock
    db: Database
    vault: Vault
    tokens: TokenService
    throttle: LoginThrottle
    auth: AuthService
    accounts: AccountService


def build_core(settings: Settings, clock: Clock, brokers: dict[str, Broker] | None = None) -> Core:
    """Build the core from ``settings``. Nothing is opened or migrated yet (``Database.start``
    and ``migrate``/``require_schema`` are the caller's start-up)."""
    s = settings
    data = Path(s.data_dir)
    db = Database(s.sqlalchemy_url, **s.database_options())
    vault = load_vault(
        s.master_key.get_secret_value() if s.master_key else None, data / "master.key"
    )
    secret = (
        s.jwt_secret.get_secret_value().encode()
        if s.jwt_secret
        else load_or_create_secret(data / "jwt.key")
    )
    tokens = TokenService(secret, clock, s.access_token_ttl)
    throttle = LoginThrottle(
        clock, max_failures=s.login_max_failures, lock_seconds=s.login_lock_seconds
    )
    auth = AuthService(
        db,
        vault,
        tokens,
        clock,
        max_users=s.max_users,
        refresh_ttl=s.refresh_token_ttl,
        throttle=throttle,
    )
    accounts = AccountService(
        db,
        vault,
        clock,
        brokers if brokers is not None else {},
        paper_cash=s.paper_initial_cash,
        commission_rate=s.commission_rate,
        url_policy=BrokerUrlPolicy(s.allow_custom_broker_urls, tuple(s.broker_url_hosts)),
    )
    return Core(clock, db, vault, tokens, throttle, auth, accounts)
