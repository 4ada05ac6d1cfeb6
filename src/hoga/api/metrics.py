"""``GET /metrics``: Prometheus exposition, for admins only (bearer token).

An unauthenticated listener for a local Prometheus is ``HOGA_METRICS_ADDRESS``
(``ops/metrics.py``); this route stays admin-only either way.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from hoga.api.deps import Admin, get_hoga

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(_ctx: Admin, request: Request) -> Response:
    body, content_type = await get_hoga(request).render_metrics()
    return Response(body, media_type=content_type)
