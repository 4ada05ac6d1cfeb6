"""``GET /metrics``: Prometheus exposition, for admins only (bearer token).

An unauthenticated listener for a local Prometheus is ``HOGA_METRICS_ADDRESS``
(``ops/metrics.py``); this route stays admin-only either way.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from hoga.api.deps import Admin, get_hoga
from hoga.api.schemas import SIGNED_IN, media

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    include_in_schema=False,
    response_class=PlainTextResponse,
    responses=media("text/plain; version=0.0.4", "Prometheus exposition", *SIGNED_IN),
)
async def metrics(_ctx: Admin, request: Request) -> Response:
    body, content_type = await get_hoga(request).render_metrics()
    return Response(body, media_type=content_type)
