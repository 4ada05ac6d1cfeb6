"""Market data: the shared hub, bars, the bundled universe and the feeds behind them."""
