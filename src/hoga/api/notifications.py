"""Notification channels of the signed-in user (filled in by the notifications work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/me/notifications", tags=["notifications"])
