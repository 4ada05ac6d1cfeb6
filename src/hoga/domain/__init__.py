"""The pure core: market rules, orders, portfolios and tiers. No I/O; imports nothing else from hoga."""
