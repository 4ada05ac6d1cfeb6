"""The dashboard's files: gzip-compressed when the browser accepts it, and cached.

* Text assets (JS, CSS, SVG, HTML, JSON) are compressed once per file version (path, size,
  mtime) and kept in memory - the whole dashboard is a few hundred KB - and sent with
  ``Content-Encoding: gzip`` and ``Vary: Accept-Encoding``.
* Caching: the dashboard's own modules are not fingerprinted, so the browser must revalidate
  them (``no-cache`` with an ``ETag``; an unchanged file costs a 304). Files under
  ``vendor/<name>-<version>/`` never change under their path and are cached for a year.
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache

from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.responses import FileResponse, Response
from starlette.types import Scope

COMPRESSIBLE = {".js", ".mjs", ".css", ".svg", ".html", ".json", ".txt", ".map"}
REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"


@lru_cache(maxsize=256)
def _gzipped(path: str, size: int, mtime_ns: int) -> tuple[bytes, str]:
    """(compressed bytes, their ETag) of one version of a file."""
    with open(path, "rb") as fh:
        raw = fh.read()
    body = gzip.compress(raw, compresslevel=9, mtime=0)
    return body, f'"{mtime_ns:x}-{size:x}-gz"'


def _cache_control(path: str) -> str:
    return IMMUTABLE if path.startswith("vendor/") else REVALIDATE


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or "*" in tags


class DashboardStatic(StaticFiles):
    """``StaticFiles`` that compresses text assets and says how long to keep them."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        cache = _cache_control(path)
        response.headers["Cache-Control"] = cache
        if not isinstance(response, FileResponse) or response.status_code != 200:
            return response
        request_headers = Headers(scope=scope)
        full = str(response.path)
        if os.path.splitext(full)[1] not in COMPRESSIBLE or "gzip" not in request_headers.get(
            "accept-encoding", ""
        ):
            response.headers["Vary"] = "Accept-Encoding"
            return response
        st = os.stat(full)
        body, etag = _gzipped(full, st.st_size, st.st_mtime_ns)
        headers = {
            "ETag": etag,
            "Cache-Control": cache,
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }
        if _etag_matches(request_headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        headers["Content-Encoding"] = "gzip"
        return Response(body, media_type=response.media_type, headers=headers)
