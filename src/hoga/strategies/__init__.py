"""Strategies: the API strategies are written against (``base``), the built-in catalog, plugin
discovery (``registry``) and the per-user runner that drives them on the shared feed.

The same strategy classes run live (``runner``) and in backtests (``hoga.backtest``); the
``Context`` they trade through is identical in both, only its driver differs.
"""
