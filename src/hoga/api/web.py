"""Dashboard support: the charting library served from the installed ``plotly`` package, and
the security headers the dashboard's pages carry.

Nothing is fetched from the internet: plotly.js comes from ``plotly/package_data/plotly.min.js``
inside the Python package, which is a dependency of hoga (it is not copied into the repository).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from hoga.domain.errors import NotFound

router = APIRouter(include_in_schema=False)

# The dashboard loads only its own files. Styles allow 'unsafe-inline' because plotly.js writes
# a <style> element for its charts; scripts stay strictly same-origin. ``data:`` images are the
# TOTP QR code (an SVG data URI rendered by the server) and plotly's toolbar icons.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The page shell is tiny and changes with upgrades: always revalidate it.
    "Cache-Control": "no-cache",
}


def plotly_js_path() -> Path | None:
    """Where the installed plotly package keeps its offline bundle, if it is installed."""
    try:
        candidate = files("plotly").joinpath("package_data", "plotly.min.js")
    except ModuleNotFoundError:
        return None
    path = Path(str(candidate))
    return path if path.is_file() else None


@router.get("/vendor/plotly.min.js")
async def plotly_js() -> Response:
    path = plotly_js_path()
    if path is None:
        raise NotFound(
            "차트 라이브러리(plotly)가 설치되어 있지 않습니다 (pip install plotly)",
            "web.plotly_missing",
        )
    return FileResponse(
        str(path),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
