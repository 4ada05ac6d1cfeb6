"""Backtests: the same strategy classes and Context as live trading, over historical bars.

``data`` loads and checks bars, ``engine`` runs a strategy over them with the paper/live cost
model, ``report`` computes the figures and draws the charts, ``service`` runs backtests for API
users as background jobs.
"""
