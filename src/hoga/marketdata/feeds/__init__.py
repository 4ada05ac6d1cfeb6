"""Feeds: adapters that bring ticks into the hub (simulator, replay, brokers)."""
