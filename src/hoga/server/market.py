"""Building the market side: the simulated KRX market, the feed choice (an injected feed, the
replay file or the simulator; the broker feeds replace it later, ``feeds.py``), the hub, the
quote lookup and the instrument master."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hoga.config import ConfigError, Settings
from hoga.domain.clock import Clock
from hoga.domain.feed import Feed
from hoga.domain.market import QuoteSource
from hoga.marketdata.bars import BarBuilder
from hoga.marketdata.feeds.replay import ReplayFeed
from hoga.marketdata.feeds.simulator import SimulatedMarket, SimulatorFeed
from hoga.marketdata.hub import Hub
from hoga.marketdata.instruments import InstrumentService
from hoga.marketdata.lookup import MarketLookup
from hoga.marketdata.universe import Universe, bundled_universe
from hoga.store.db import Database

# The records keep the composition root's logger name (operators filter on it).
log = logging.getLogger("hoga.app")

BROKER_FEEDS = ("kis", "kiwoom", "kiwoom_openapi")


def _always_open() -> bool:
    return True


@dataclass
class MarketParts:
    """What ``build_market`` made; ``HogaApp`` keeps each under the attribute of that name.
    ``paper_quotes`` is the book the paper broker trades against (simulated or replayed)."""

    market_mode: str
    universe: Universe
    market: SimulatedMarket
    market_open: Callable[[], bool]
    replay: ReplayFeed | None
    feed: Feed
    bars: BarBuilder
    hub: Hub
    quotes: QuoteSource
    paper_quotes: QuoteSource
    lookup: MarketLookup
    live_feed: bool
    instruments: InstrumentService


def build_market(s: Settings, clock: Clock, db: Database, feed: Feed | None) -> MarketParts:
    """The simulated KRX market is both the default feed and the paper broker's book."""
    # A broker feed carries the real market: demo mode's "always open" would let orders
    # out at any hour, so the KRX calendar governs (said at start-up and in the status).
    market_mode = s.market_mode
    if s.feed in BROKER_FEEDS and s.market_mode == "demo":
        market_mode = "calendar"
        log.warning(
            "HOGA_FEED=%s carries the real market: following the KRX calendar "
            "(HOGA_MARKET_MODE=demo applies to the simulated market only)",
            s.feed,
        )
    universe = Universe(bundled_universe())
    market = SimulatedMarket(universe, seed=s.sim_seed, clock=clock, mode=market_mode)
    quotes: QuoteSource = market
    market_open: Callable[[], bool] = market.is_open
    replay: ReplayFeed | None = None
    chosen: Feed
    if feed is not None:
        chosen = feed
    elif s.feed == "replay":
        replay = replay_feed(s, universe)
        quotes = chosen = replay
        if market_mode == "demo":
            market_open = _always_open
    else:
        chosen = SimulatorFeed(
            market,
            ticks_per_second=s.sim_ticks_per_second,
            symbols_per_session=s.sim_symbols_per_session or None,
            max_sessions=s.sim_max_sessions or None,
        )
    bars = BarBuilder()
    # With a broker feed the day's reference prices come from the broker's ticks, not the
    # simulator's: the hub answers quotes and instruments itself (no tick yet: no price).
    live = s.feed in BROKER_FEEDS and feed is None
    hub = Hub(
        chosen,
        universe,
        clock,
        grace=s.hub_grace_seconds,
        stale_after=s.hub_stale_seconds,
        is_trading=market_open,
        bars=bars,
        instruments=None if live else quotes.instrument,
    )
    # The paper broker keeps its own simulated (or replayed) book whatever the feed.
    paper_quotes = quotes
    if live:
        quotes = hub
    # Any symbol's quote and order book: the hub or simulator first, the broker on demand
    # (the source is attached once the broker feed's accounts are known, at start-up).
    lookup = MarketLookup(hub, quotes, clock, ttl=s.quote_cache_seconds)
    # The instrument master: with a broker feed it becomes the universe (every listed
    # symbol tradable); the simulator keeps its bundled demo universe.
    instruments = InstrumentService(db, clock, universe, apply=live, bundle=bundled_universe())
    # The paper book prices master symbols at their 기준가 when asked (live mode only:
    # otherwise the universe is the bundle and this adds nothing).
    market.set_catalog(universe.get)
    return MarketParts(
        market_mode=market_mode,
        universe=universe,
        market=market,
        market_open=market_open,
        replay=replay,
        feed=chosen,
        bars=bars,
        hub=hub,
        quotes=quotes,
        paper_quotes=paper_quotes,
        lookup=lookup,
        live_feed=live,
        instruments=instruments,
    )


def replay_feed(s: Settings, universe: Universe) -> ReplayFeed:
    """``HOGA_FEED=replay``: the replay file's ticks, or a ConfigError saying what is wrong."""
    if s.replay_file is None:
        raise ConfigError(
            "HOGA_FEED=replay needs HOGA_REPLAY_FILE (a CSV or Parquet of ticks or bars)"
        )
    try:
        return ReplayFeed(
            Path(s.replay_file),
            speed=s.replay_speed,
            loop_forever=True,
            instruments={i.symbol: i for i in universe.instruments},
        )
    except FileNotFoundError:
        raise ConfigError(f"HOGA_REPLAY_FILE {s.replay_file} does not exist") from None
    except ValueError as e:
        raise ConfigError(f"HOGA_REPLAY_FILE: {e}") from None
