"""Strategies: the API strategies are written against (``base``), the built-in catalog, plugin
discovery (``registry``), the strategy service the API calls (``service``: create, list, start,
stop, delete) and the live driver that runs them on the shared feed (``live``, with its
``worker``, order ``placing``, ``logs``, and ``pnl`` for the strategy's view).

The same strategy classes run live (``live``) and in backtests (``hoga.backtest``); the
``Context`` they trade through is identical in both, only its driver differs.
"""
