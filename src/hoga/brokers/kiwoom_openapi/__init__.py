"""Kiwoom OpenAPI+ (the Windows control) through the hoga-bridge: the broker adapter, its
bridge client and the market-data feed. The bridge itself is the separate ``bridge/`` package.
"""

from hoga.brokers.kiwoom_openapi.broker import KiwoomOpenApiBroker
from hoga.brokers.kiwoom_openapi.client import BridgeClient, BridgeError
from hoga.brokers.kiwoom_openapi.feed import KiwoomOpenApiFeed

__all__ = ["BridgeClient", "BridgeError", "KiwoomOpenApiBroker", "KiwoomOpenApiFeed"]
