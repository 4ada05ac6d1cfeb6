"""The broker feeds and the instrument master, attached at start-up: a Kiwoom or OpenAPI+ feed
needs the named accounts' credentials, which are only readable once the database is open."""

from __future__ import annotations

import logging
from datetime import time as dt_time
from typing import TYPE_CHECKING

from hoga.brokers.kis.market import KisMarketData
from hoga.brokers.kis.master import KisMasterSource
from hoga.brokers.kiwoom.feed import FeedCredentials, KiwoomFeed
from hoga.brokers.kiwoom.market import KiwoomListSource, KiwoomMarketData
from hoga.brokers.kiwoom_openapi import KiwoomOpenApiFeed
from hoga.config import ConfigError
from hoga.marketdata.instruments import InstrumentSource

if TYPE_CHECKING:
    from hoga.app import HogaApp

# The records keep the composition root's logger name (operators filter on it).
log = logging.getLogger("hoga.app")


async def use_kiwoom_feed(app: HogaApp) -> None:
    """Market data over the app keys of the Kiwoom accounts the operator named (their
    credentials are only readable once the database is open, hence at start-up)."""
    s = app.settings
    creds = []
    for account_id in s.kiwoom_feed_accounts:
        ref = await app.orders.account_ref(account_id)
        if ref is None or ref.broker != "kiwoom" or ref.app_key is None or ref.app_secret is None:
            raise ConfigError(
                f"HOGA_KIWOOM_FEED_ACCOUNTS: account {account_id} is not a linked Kiwoom account"
            )
        creds.append(
            FeedCredentials(
                ref.app_key,
                ref.app_secret,
                env=ref.env,
                base_url=ref.base_url,
                ws_url=ref.ws_url,
            )
        )
    if not creds:
        raise ConfigError(
            "HOGA_FEED=kiwoom needs HOGA_KIWOOM_FEED_ACCOUNTS (ids of linked Kiwoom accounts)"
        )
    first = creds[0]
    client = app.kiwoom.wire.client(
        first.env, first.app_key, first.app_secret, first.base_url, first.ws_url
    )
    app.lookup.source = KiwoomMarketData(client, app.clock)
    app._kiwoom_list_source = KiwoomListSource(client)
    app.feed = KiwoomFeed(
        app.kiwoom.wire,
        creds,
        clock=app.clock,
        symbols_per_session=s.kiwoom_feed_symbols_per_session,
    )
    app.hub.feed = app.feed


async def use_kiwoom_openapi_feed(app: HogaApp) -> None:
    """Market data from the bridge of the named kiwoom_openapi account."""
    account_id = app.settings.kiwoom_openapi_feed_account
    ref = await app.orders.account_ref(account_id) if account_id is not None else None
    if ref is None or ref.broker != "kiwoom_openapi":
        raise ConfigError(
            "HOGA_FEED=kiwoom_openapi needs HOGA_KIWOOM_OPENAPI_FEED_ACCOUNT "
            "(the id of a linked kiwoom_openapi account)"
        )
    app.feed = KiwoomOpenApiFeed(app.kiwoom_openapi, ref, app.clock)
    app.hub.feed = app.feed


def sync_at(app: HogaApp) -> dt_time | None:
    """The daily master sync's time (``HOGA_SYMBOLS_SYNC_AT``), None when it is off."""
    at = app.settings.symbols_sync_at
    if at == "off":
        return None
    hh, mm = at.split(":")
    return dt_time(int(hh), int(mm))


def instrument_source(app: HogaApp) -> InstrumentSource | None:
    """Where the master comes from (``HOGA_SYMBOLS_SOURCE``): KIS's public master files,
    or Kiwoom's ``ka10099`` over the first Kiwoom feed key (None: no Kiwoom key)."""
    s = app.settings
    use = s.symbols_source
    if use == "auto":
        use = "kiwoom" if s.feed == "kiwoom" else "kis"
    if use == "kis":
        return KisMasterSource(s.kis_master_url)
    return app._kiwoom_list_source


async def start_instruments(app: HogaApp) -> None:
    """Load the stored master (the universe with a broker feed) and attach the broker's
    on-demand quotes to the lookup."""
    count = await app.instruments.load()
    if app.live_feed:
        log.info(
            "instrument master: %d stored symbols%s",
            count,
            "" if count else " - run `hoga symbols sync` (the bundled list is used until then)",
        )
    if app.settings.feed == "kis" and app.lookup.source is None:
        app.lookup.source = KisMarketData(app.kis, app.clock, app.settings.kis_feed_accounts)
    if app.lookup.source is not None:
        # Backtests of a symbol with no stored bars read the broker's chart history.
        app.backtests.history = app.lookup.history
