"""Every JSON endpoint declares its answer (issue 13, "typed answers"): walks the application's
routes and fails on an ``APIRoute`` without a response model, unless it is listed below as a
non-JSON answer with the reason. The OpenAPI document built from them names each operation's
error statuses too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from hoga.api.schemas import Answer, answer
from hoga.api.server import create_api

#: (method, path) -> why the answer is not JSON (its media type is declared on the route).
NOT_JSON = {
    ("GET", "/"): "the dashboard's HTML page",
    ("GET", "/favicon.ico"): "an SVG icon",
    ("GET", "/api/docs"): "Swagger UI's HTML page",
    ("GET", "/api/docs/assets/init.js"): "Swagger UI's start-up script",
    ("GET", "/api/docs/assets/{name}"): "Swagger UI's files",
    ("GET", "/metrics"): "Prometheus text exposition",
    ("GET", "/api/history/orders.csv"): "CSV",
    ("GET", "/api/history/fills.csv"): "CSV",
}


def _app() -> FastAPI:
    # The routes and their declarations only: nothing here runs a request.
    hoga = SimpleNamespace(
        auth_watch=SimpleNamespace(listeners=[]), settings=SimpleNamespace(cors_origins=[])
    )
    return create_api(hoga)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Declared:
    """What a route declares about its answer."""

    response_model: Any
    response_class: Any
    status_code: int | None


def _walk(routes: list[BaseRoute]) -> Iterator[tuple[str, Any]]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route.path, route
        elif hasattr(route, "effective_route_contexts"):
            # FastAPI >= 0.160 keeps an included router whole and resolves its routes (with
            # the prefix) as "effective route contexts" carrying the same declarations.
            for ctx in route.effective_route_contexts():
                if isinstance(ctx.original_route, APIRoute):
                    yield ctx.path, ctx


def _routes() -> list[tuple[str, str, Declared]]:
    out = []
    for path, r in _walk(_app().routes):
        cls = r.response_class
        declared = Declared(
            r.response_model,
            cls.value if isinstance(cls, DefaultPlaceholder) else cls,
            r.status_code,
        )
        out += [(method, path, declared) for method in sorted(r.methods)]
    assert len(out) > 60, "the walk missed the routers"
    return out


def test_every_json_route_declares_a_response_model() -> None:
    missing = [
        f"{method} {path}"
        for method, path, route in _routes()
        if route.response_model is None
        and (method, path) not in NOT_JSON
        and route.status_code != 204
    ]
    assert missing == []


def test_the_allowlist_names_real_non_json_routes() -> None:
    routes = {(method, path): route for method, path, route in _routes()}
    for key, reason in NOT_JSON.items():
        assert key in routes, f"{key} is allowlisted ({reason}) but no longer exists"
        route = routes[key]
        assert route.response_model is None, f"{key} has a model: take it off the list"
        assert route.response_class is not JSONResponse, f"{key} must declare its media type"


def test_a_no_content_route_answers_no_body() -> None:
    for method, path, route in _routes():
        if route.status_code == 204:
            assert route.response_model is None, f"{method} {path}"


def _operations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    ]


def test_the_document_names_the_success_and_error_statuses_of_every_operation() -> None:
    doc = _app().openapi()
    unlisted = []
    for name, op in _operations(doc):
        statuses = {int(s) for s in op["responses"]}
        if not any(200 <= s < 300 for s in statuses):
            unlisted.append(f"{name}: no success")
        if name not in ("GET /health", "GET /ready") and not any(s >= 400 for s in statuses):
            unlisted.append(f"{name}: no error status")
    assert unlisted == []


def test_errors_are_documented_as_the_error_body() -> None:
    doc = _app().openapi()
    for name, op in _operations(doc):
        for status, resp in op["responses"].items():
            if int(status) < 400 or name == "GET /ready":
                continue
            schema = resp["content"]["application/json"]["schema"]["$ref"]
            assert schema.rsplit("/", 1)[-1] in ("ErrorBody", "DeniedOrder"), (name, status)


class _Shape(Answer):
    a: int
    b: str | None = None


async def test_an_answer_is_what_the_view_wrote_checked_not_padded() -> None:
    """``answer`` adds no default for a field the view left out and keeps a field the model
    does not know; a view that breaks its model is a server error, never a wrong answer."""
    app = FastAPI()

    @app.get("/short", **answer(_Shape))
    async def short() -> dict[str, Any]:
        return {"a": 1, "extra": [1, 2]}

    @app.get("/broken", **answer(_Shape))
    async def broken() -> dict[str, Any]:
        return {"a": "not a number"}

    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/short")).json() == {"a": 1, "extra": [1, 2]}
        assert (await client.get("/broken")).status_code == 500
