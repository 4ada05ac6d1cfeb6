"""Admin: every user's strategies that have an error on record, for the system-status page.

Read-only and admins only. The runner's status counts errors; this says which strategy, whose,
and what the error was.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from hoga.api.deps import Admin, get_hoga
from hoga.api.schemas import SIGNED_IN, answer
from hoga.api.schemas.strategies import StrategyErrors
from hoga.strategies.records import STATUSES

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get("/strategy-errors", **answer(StrategyErrors, *SIGNED_IN))
async def strategy_errors(ctx: Admin, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    recs = await hoga.queries.strategies_with_status(list(STATUSES))
    names = {u.id: u.username for u in await hoga.auth.list_users()}
    failing = sorted(
        (r for r in recs if r.last_error or r.status == "error"),
        key=lambda r: r.error_at or r.updated_at,
        reverse=True,
    )
    return {
        "errors": [
            {
                "strategy_id": r.id,
                "name": r.name,
                "kind": r.kind,
                "status": r.status,
                "user_id": r.user_id,
                "username": names.get(r.user_id),
                "message": r.last_error,
                "at": (r.error_at or r.updated_at).isoformat(),
            }
            for r in failing
        ]
    }
