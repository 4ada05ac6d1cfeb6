"""Kiwoom Securities (키움증권) REST API: the broker adapter and the realtime market-data feed.

``KiwoomBroker`` implements ``hoga.brokers.base.Broker`` for real and mock accounts;
``KiwoomFeed`` implements the hub's ``Feed`` over the same wire (one token, one request budget
and one WebSocket session per app key, shared through ``KiwoomWire``).
"""

from hoga.brokers.kiwoom.broker import KiwoomBroker
from hoga.brokers.kiwoom.client import ClientOptions, KiwoomWire, Timeouts
from hoga.brokers.kiwoom.feed import FeedCredentials, KiwoomFeed
from hoga.brokers.kiwoom.realtime import RealtimeOptions

__all__ = [
    "ClientOptions",
    "FeedCredentials",
    "KiwoomBroker",
    "KiwoomFeed",
    "KiwoomWire",
    "RealtimeOptions",
    "Timeouts",
]
