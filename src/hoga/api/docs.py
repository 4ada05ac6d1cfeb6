"""``/api/docs``: Swagger UI from local files, under a Content-Security-Policy.

FastAPI's default page loads Swagger UI's script and styles from a CDN and starts it with an
inline script; both are gone (issue 12). The assets come from the installed
``fastapi-offline`` package (Swagger UI's own files, Apache-2.0, shipped in that MIT-licensed
package), the start-up code is our own small script, and the page's CSP allows scripts from
this origin only.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from hoga.domain.errors import NotFound

router = APIRouter(include_in_schema=False)

DOCS_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # Swagger UI sets element styles from its script.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": DOCS_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hoga API</title>
<link rel="icon" href="/api/docs/assets/favicon.png">
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/docs/assets/init.js"></script>
</body>
</html>
"""

_INIT = """window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  syntaxHighlight: false,
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});
"""


def _asset_dir() -> Path | None:
    try:
        return Path(str(files("fastapi_offline").joinpath("static")))
    except ModuleNotFoundError:
        return None


@router.get("/api/docs", response_class=HTMLResponse)
async def docs_page() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers=HEADERS)


@router.get("/api/docs/assets/init.js", response_class=Response)
async def docs_init() -> Response:
    return Response(
        _INIT,
        media_type="text/javascript; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


@router.get("/api/docs/assets/{name}", response_class=FileResponse)
async def docs_asset(name: str) -> Response:
    folder = _asset_dir()
    media = ASSETS.get(name)
    if folder is None or media is None or not (folder / name).is_file():
        raise NotFound("없는 파일입니다 (no such file)", "not_found")
    return FileResponse(
        str(folder / name),
        media_type=media,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
