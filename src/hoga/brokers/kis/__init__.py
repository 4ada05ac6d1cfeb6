"""KIS (한국투자증권) Open API: the broker adapter and the market-data feed."""

from hoga.brokers.kis.broker import KisBroker
from hoga.brokers.kis.client import KisOptions
from hoga.brokers.kis.feed import KisFeed

__all__ = ["KisBroker", "KisFeed", "KisOptions"]
