"""Linking a broker account: the checks a link request passes before anything is stored.

Contract: the broker is a real one (paper accounts are created for each user), the
environment ``real`` or ``mock``; account number, keys and HTS id have the brokers' shapes;
custom URLs must be allowed by the operator (``BrokerUrlPolicy``: no calls to hosts the
operator did not name); the commission rate is below 1%. A failed check is ``InvalidInput``
naming the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from hoga.domain.errors import InvalidInput
from hoga.security.brokerurls import BrokerUrlPolicy

ENVS = ("real", "mock")
_ACCOUNT_RE = re.compile(r"\d{8}-?\d{2}|\d{10,12}")
_KEY_RE = re.compile(r"[\x21-\x7e]{8,512}")


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """What a user asks to link (``POST /api/broker-accounts``), secrets in plain text."""

    broker: str
    env: str
    account_no: str
    app_key: str
    app_secret: str
    hts_id: str | None = None
    label: str | None = None
    base_url: str | None = None
    ws_url: str | None = None
    commission_rate: Decimal | None = None


def check_link(
    req: LinkRequest, url_policy: BrokerUrlPolicy, default_rate: Decimal
) -> tuple[str, str, str, Decimal]:
    """The request's broker, environment, account number and commission rate, checked."""
    broker, env = req.broker.lower(), req.env.lower()
    if broker not in ("kis", "kiwoom", "kiwoom_openapi"):
        raise InvalidInput(
            "broker must be kis, kiwoom or kiwoom_openapi (paper accounts are created for you)",
            "account.bad_broker",
            field="broker",
        )
    if env not in ENVS:
        raise InvalidInput("env must be real or mock", "account.bad_env", field="env")
    account_no = req.account_no.strip()
    if not _ACCOUNT_RE.fullmatch(account_no):
        raise InvalidInput(
            "계좌번호 형식이 올바르지 않습니다 (e.g. 50123456-01)",
            "account.bad_number",
            field="account_no",
        )
    if broker == "kiwoom_openapi":
        # OpenAPI+ through hoga-bridge: app_key is the Kiwoom login id the bridge logs in
        # as, app_secret the bridge's token, base_url the bridge (docs/kiwoom-openapi.md).
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", req.app_key.strip()):
            raise InvalidInput(
                "app_key: the Kiwoom login id (1-32 letters or digits)",
                "account.bad_app_key",
                field="app_key",
            )
        if not req.base_url or not re.fullmatch(r"wss?://\S+", req.base_url):
            raise InvalidInput(
                "base_url: the bridge's ws:// or wss:// address is required",
                "account.bad_url",
                field="base_url",
            )
    for name, value in (("app_key", req.app_key), ("app_secret", req.app_secret)):
        if broker == "kiwoom_openapi" and name == "app_key":
            continue
        if not _KEY_RE.fullmatch(value.strip()):
            raise InvalidInput(
                f"{name}: 8-512 printable characters without spaces",
                f"account.bad_{name}",
                field=name,
            )
    if req.hts_id is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", req.hts_id):
        raise InvalidInput("hts_id: 1-32 letters or digits", "account.bad_hts_id", field="hts_id")
    # No calls to hosts the operator did not name (issue 12: SSRF).
    url_policy.check("base_url", req.base_url)
    url_policy.check("ws_url", req.ws_url)
    rate = req.commission_rate if req.commission_rate is not None else default_rate
    if not Decimal(0) <= rate < Decimal("0.01"):
        raise InvalidInput(
            "commission_rate must be between 0 and 0.01",
            "account.bad_commission",
            field="commission_rate",
        )
    return broker, env, account_no, rate
