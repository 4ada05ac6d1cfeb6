"""Notification channel rows (``notification_channels``); URLs are vault envelopes."""

from __future__ import annotations


def channel_aad(user_id: int, channel_id: int) -> str:
    """Associated data binding a channel URL envelope to its user and row."""
    return f"notify:{user_id}:{channel_id}"
