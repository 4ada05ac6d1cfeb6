"""Readiness: can this server trade right now, and if not, which part is missing.

``GET /ready`` answers ``{status: ok|degraded|down, parts: {database, feed, dispatcher,
brokers}}`` with 503 unless ``ok``. The server is **down** when its database or dispatcher is
(nothing can be accepted or sent); **degraded** when anything else is not ok - a broker down
or erroring, feed sessions silent during trading, the server paused or its lock lost. The
parts carry states and counts only (no account numbers, no versions): the endpoint needs no
token, so a load balancer or monitor can poll it.
"""

from __future__ import annotations

from typing import Any

from hoga.execution.health import DEGRADED, DOWN, OK


def feed_part(hub: dict[str, Any], *, trading: bool, stale_after: float) -> dict[str, Any]:
    """The shared feed, from ``Hub.health()``: sessions that should be delivering and are."""
    sessions = hub.get("sessions", [])
    wanted = int(hub.get("symbols_wanted", 0))
    unplaced = len(hub.get("unplaced", []))
    silent = [s for s in sessions if s.get("last_message_age", 0) > stale_after]
    out: dict[str, Any] = {
        "feed": hub.get("feed"),
        "sessions": len(sessions),
        "silent_sessions": len(silent) if trading else 0,
        "symbols_wanted": wanted,
        "unplaced": unplaced,
        "trading": trading,
    }
    if (wanted and not sessions) or (trading and sessions and len(silent) == len(sessions)):
        status = DOWN
    elif (trading and silent) or unplaced:
        status = DEGRADED
    else:
        status = OK
    return {"status": status, **out}


def overall(parts: dict[str, Any]) -> str:
    """down if the database or dispatcher is down; degraded if any other part is not ok."""
    if any(parts[p]["status"] == DOWN for p in ("database", "dispatcher") if p in parts):
        return DOWN
    statuses = [parts[p]["status"] for p in parts if p != "brokers"]
    statuses += [b["status"] for b in parts.get("brokers", {}).values()]
    return OK if all(s == OK for s in statuses) else DEGRADED
