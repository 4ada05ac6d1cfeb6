"""The FastAPI application: routers, error handlers, CORS, health, and the dashboard files."""

from __future__ import annotations

import platform
from importlib import metadata
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Scope

from hoga import __version__
from hoga.api import admin, auth, broker_accounts, market, me, orders, portfolio, ws
from hoga.api import admin_strategies as admin_strategies_api
from hoga.api import docs as docs_api
from hoga.api import fills as fills_api
from hoga.api import instruments as instruments_api
from hoga.api import web as web_api
from hoga.api.deps import ApiBudget, bearer_token, client_ip
from hoga.api.errors import install_error_handlers
from hoga.api.guard import OuterGuard
from hoga.api.request_context import RequestContext
from hoga.api.schemas import answer
from hoga.api.schemas.ops import Health, Readiness
from hoga.api.static_files import DashboardStatic
from hoga.domain.errors import HogaError

if TYPE_CHECKING:
    from hoga.app import HogaApp

WEB = files("hoga.web")


def _versions() -> dict[str, str]:
    out = {"hoga": __version__, "python": platform.python_version()}
    for pkg in ("fastapi", "sqlalchemy", "pydantic", "uvicorn"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "?"
    return out


class _HogaAPI(FastAPI):
    """FastAPI with ``api/guard.py`` outside even Starlette's error middleware (it also caps
    request bodies while they are read)."""

    def build_middleware_stack(self) -> ASGIApp:
        return OuterGuard(super().build_middleware_stack())


class _Assets(DashboardStatic):
    """The dashboard's scripts, styles and icons, compressed and cached (``DashboardStatic``).
    Its page is served only at ``/`` with the security headers (``api/web.py``):
    ``/static/index.html`` used to serve it without them."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.lower().endswith((".html", ".htm")):
            raise StarletteHTTPException(404)
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


async def _signed_in(request: Request) -> bool:
    if not request.headers.get("authorization"):
        return False
    try:
        await request.app.state.hoga.auth.authenticate(bearer_token(request), client_ip(request))
    except HogaError:
        return False
    return True


def create_api(hoga: HogaApp) -> FastAPI:
    app = _HogaAPI(
        title="hoga",
        version=__version__,
        # Served by api/docs.py from local files, with a CSP (no CDN).
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.hoga = hoga
    app.state.api_budget = ApiBudget()
    app.state.ws_connections = ws._Connections()
    # Disabled users and ended sessions lose their sockets, whoever made the change.
    hoga.auth_watch.listeners.append(app.state.ws_connections.on_auth_change)
    install_error_handlers(app)
    app.add_middleware(RequestContext)  # request ids in logs, API latency (api/request_context.py)
    if hoga.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=hoga.settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Hoga-Client"],
        )
    for module in (auth, me, admin, broker_accounts, orders, portfolio, market, ws):
        app.include_router(module.router)
    # --- dashboard: the caller's fills and the locally served chart library ---
    app.include_router(fills_api.router)
    app.include_router(web_api.router)
    app.include_router(docs_api.router)
    app.include_router(admin_strategies_api.router)
    # --- dashboard (web branch): watchlist, trade history, daily profit ---
    from hoga.api import history as history_api
    from hoga.api import strategy_extras as strategy_extras_api
    from hoga.api import watchlist as watchlist_api

    app.include_router(watchlist_api.router)
    app.include_router(history_api.router)
    app.include_router(strategy_extras_api.router)
    # --- end of dashboard ---
    app.include_router(instruments_api.router)  # the instrument master (market branch)
    # --- strategies and backtests (strategies branch) ---
    from hoga.api import backtests, strategies

    for module in (strategies, backtests):
        app.include_router(module.router)
    # --- end of strategies and backtests ---
    # --- operations: metrics, notifications (ops branch) ---
    from hoga.api import metrics as metrics_api
    from hoga.api import notifications as notifications_api

    for module in (metrics_api, notifications_api):
        app.include_router(module.router)
    # --- end of operations ---
    extra = getattr(hoga, "extra_routers", [])
    for router in extra:
        app.include_router(router)

    versions = _versions()

    @app.get("/health", tags=["health"], **answer(Health))
    async def health(request: Request) -> dict[str, Any]:
        """Liveness. Without a valid bearer token it says only ``ok`` or ``starting`` (issue 12:
        no versions for strangers); a signed-in caller also gets what runs here."""
        h: HogaApp = request.app.state.hoga
        started = h.started_at
        status = "ok" if started is not None else "starting"
        if not await _signed_in(request):
            return {"status": status}
        return {
            "status": status,
            "version": __version__,
            "versions": versions,
            "database": "postgresql" if h.db.is_postgres else "sqlite",
            "market_mode": h.market_mode,
            "simulated": h.feed.name == "simulator",
            "feed": h.feed.name,
            "uptime_s": round(h.clock.time() - started, 1) if started else 0,
        }

    @app.get(
        "/ready",
        tags=["health"],
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "a part is down or degraded"}},
    )
    async def ready(request: Request) -> JSONResponse:
        """Can this server trade now? 200 when every part is ok, else 503 with the parts."""
        h: HogaApp = request.app.state.hoga
        if h.started_at is None:
            return JSONResponse({"status": "down", "parts": {}}, status_code=503)
        body = await h.readiness()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    app.mount("/static", _Assets(directory=str(WEB.joinpath("static"))), name="static")

    @app.get("/", include_in_schema=False, response_class=FileResponse)
    async def index() -> Response:
        return FileResponse(
            str(WEB.joinpath("static", "index.html")),
            media_type="text/html",
            headers=web_api.PAGE_HEADERS,
        )

    @app.get("/favicon.ico", include_in_schema=False, response_class=FileResponse)
    async def favicon() -> Response:
        return FileResponse(str(WEB.joinpath("static", "favicon.svg")), media_type="image/svg+xml")

    return app
