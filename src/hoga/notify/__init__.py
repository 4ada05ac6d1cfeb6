"""Notifications: per-user channels (apprise URLs in the vault), events from the event bus,
asynchronous delivery with retries, and server-wide admin alerts."""
