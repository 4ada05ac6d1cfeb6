"""Answers for operators: ``/health``, ``/ready``, the admin's system status, pause and kill
switch. The parts' inner diagnostics (feed sessions, gateways, reconciliation per account) are
open-ended dicts: they name what each part counts and grow with it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hoga.api.schemas import Answer


class Health(Answer):
    """Liveness. Strangers get ``status`` only; a signed-in caller also what runs here."""

    #: ok or starting.
    status: str
    version: str | None = None
    versions: dict[str, Any] | None = None
    database: str | None = None
    market_mode: str | None = None
    simulated: bool | None = None
    feed: str | None = None
    uptime_s: float | None = None


class Readiness(Answer):
    """Can this server trade now: ``status`` ok, degraded or down, and each part's."""

    status: str
    #: database, feed, dispatcher, brokers: each ``{"status": ..., ...}``.
    parts: dict[str, Any]


class PauseView(Answer):
    """The server-wide pause: by whom, why, since when (ISO time)."""

    paused: bool
    reason: str | None
    by: str | None
    since: str | None


class ServerState(Answer):
    #: ACTIVE, REDUCING or HALTED.
    state: str


class MarketState(Answer):
    mode: str
    configured_mode: str
    open: bool
    krx_session_open: bool


class QueueSize(Answer):
    size: int


class BrokerAccountHealth(Answer):
    account_id: int
    broker: str
    status: str
    cause: str | None
    code: str | None
    reason: str | None
    since: str | None
    realtime: bool | None


class ClusterStatus(Answer):
    """One cluster server as its admin status shows it."""

    instance: str = Field(description="this server's HOGA_CLUSTER_INSTANCE_ID")
    connected: bool = Field(description="its NATS connection is up")
    members: list[str] = Field(description="the ready servers of the cluster")
    users: list[int] = Field(description="ids of the users whose trading this server owns now")
    feed_owner: bool = Field(description="it runs the cluster's upstream market-data feed")


class SystemStatus(Answer):
    """The admin's system-status page: every part's state in one answer."""

    version: str
    trading_state: str
    paused: PauseView
    market: MarketState
    feed: dict[str, Any]
    queue: QueueSize
    dispatcher: dict[str, Any]
    reconciliation: dict[str, Any]
    orders: dict[str, Any]
    strategies: dict[str, Any]
    ready: str
    parts: dict[str, Any]
    brokers: list[BrokerAccountHealth]
    cluster: ClusterStatus | None = Field(
        None, description="cluster mode only (docs/scaling.md): this server and its users"
    )
