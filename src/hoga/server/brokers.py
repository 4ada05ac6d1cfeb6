"""Building the broker adapters: the paper broker on the simulated (or replayed) book, and the
real-broker adapters (KIS, Kiwoom REST, Kiwoom OpenAPI+ through hoga-bridge), whose tokens live
in the vault-backed store."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hoga.brokers.base import Broker
from hoga.brokers.kis import KisBroker, KisOptions
from hoga.brokers.kiwoom import ClientOptions as KiwoomOptions
from hoga.brokers.kiwoom import KiwoomBroker
from hoga.brokers.kiwoom import Timeouts as KiwoomTimeouts
from hoga.brokers.kiwoom_openapi import KiwoomOpenApiBroker
from hoga.brokers.paper import PaperBroker
from hoga.brokers.paper_book import PaperFaults, parse_faults
from hoga.config import Settings
from hoga.domain.clock import Clock
from hoga.domain.market import QuoteSource
from hoga.execution.token_store import VaultTokenStore
from hoga.marketdata.feeds.replay import ReplayFeed
from hoga.marketdata.feeds.simulator import SimulatedMarket


@dataclass
class BrokerParts:
    """What ``build_brokers`` made; ``HogaApp`` keeps each under the attribute of that name.
    ``brokers`` maps every broker name to its (not yet monitored) adapter."""

    paper: PaperBroker
    kis: KisBroker
    kiwoom: KiwoomBroker
    kiwoom_openapi: KiwoomOpenApiBroker
    brokers: dict[str, Broker]


def build_brokers(
    s: Settings,
    clock: Clock,
    token_store: VaultTokenStore,
    *,
    data: Path,
    paper_quotes: QuoteSource,
    market: SimulatedMarket,
    replay: ReplayFeed | None,
    market_open: Callable[[], bool],
    market_mode: str,
    paper_faults: PaperFaults | None,
    extra_brokers: dict[str, Broker] | None,
    instance_id: str | None = None,
) -> BrokerParts:
    """Every broker, by name; ``extra_brokers`` (tests) join last and may replace one."""
    paper = PaperBroker(
        paper_quotes,
        clock,
        initial_cash=s.paper_initial_cash,
        journal_path=data / "paper" / "journal.jsonl",
        # Flushed per record (a killed process loses nothing); an fsync per order would
        # block the event loop for ~1 ms for a simulated book.
        fsync=False,
        is_open=market_open,
        # Calendar mode: orders go to the KRX/Nextrade session of the hour (auctions,
        # off-hours sessions, VI); demo mode trades continuously around the clock.
        calendar=market_mode == "calendar",
        faults=paper_faults or (parse_faults(s.paper_faults) if s.paper_faults else None),
        # Cluster mode (``instance_id``): numbers unique to this server, a short hash of its
        # instance id (the broker_order_id column is 64 characters and an id may be as long).
        id_prefix=(
            hashlib.sha256(instance_id.encode()).hexdigest()[:8] + "-" if instance_id else ""
        ),
    )
    market.add_listener(paper.on_tick)
    if replay is not None:
        replay.add_listener(paper.on_tick)
    brokers: dict[str, Broker] = {"paper": paper}
    # --- real-broker adapters (KIS, Kiwoom) register here ---
    kis = KisBroker(
        clock,
        token_store,
        options=KisOptions(
            real_rate=s.kis_real_rate, mock_rate=s.kis_mock_rate, timeout=s.kis_request_timeout
        ),
    )
    brokers["kis"] = kis
    # Kiwoom REST: one token, one request budget and one WebSocket per app key.
    kiwoom = KiwoomBroker(
        clock=clock,
        token_store=token_store,
        options=KiwoomOptions(
            rate=s.kiwoom_rate,
            # Answer (or give up) before the order service's own submit timeout.
            timeouts=KiwoomTimeouts(order=max(0.5, s.submit_timeout * 0.8)),
        ),
    )
    brokers["kiwoom"] = kiwoom
    # Kiwoom OpenAPI+ through hoga-bridge: one login at a time, driven by the dispatcher's
    # session scheduling (capacity 1, switch cost) - docs/kiwoom-openapi.md.
    kiwoom_openapi = KiwoomOpenApiBroker(
        clock=clock,
        switch_cost=s.kiwoom_openapi_switch_cost,
        ca_file=str(s.kiwoom_openapi_ca_file) if s.kiwoom_openapi_ca_file else None,
        order_timeout=max(0.5, s.submit_timeout * 0.8),
    )
    brokers["kiwoom_openapi"] = kiwoom_openapi
    # --- end of real-broker adapters ---
    brokers.update(extra_brokers or {})
    return BrokerParts(paper, kis, kiwoom, kiwoom_openapi, brokers)
