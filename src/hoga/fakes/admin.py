"""The fakes' own records over HTTP: what reached the broker, and its books.

A chaos run must check from the broker's side that no order reached it twice and that hoga's
books equal the broker's. A real broker offers no such view; the fakes do, under a prefix no
broker path uses:

* ``GET /__fake__/orders`` - every order number the fake booked (new orders, modifies and
  cancels), normalised across brokers: ``account``, ``order_no``, ``orig_order_no``, ``kind``
  (new/modify/cancel), ``symbol``, ``side`` (buy/sell), ``type`` (limit/market), ``qty``,
  ``price``, ``filled``, ``filled_amount``, ``remaining``, ``day``, ``ts``;
* ``GET /__fake__/accounts`` - each account's ``cash``, ``orderable`` cash and ``positions``
  (``{symbol: {"qty", "cost"}}``);
* ``GET /__fake__/faults`` - the fault plan and how often each fault fired.

No credentials appear in any of them.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PREFIX = "/__fake__"


class FakeRecords(Protocol):
    """What a fake exposes for the admin routes."""

    def admin_orders(self) -> list[dict[str, Any]]: ...

    def admin_accounts(self) -> list[dict[str, Any]]: ...

    def admin_faults(self) -> dict[str, Any]: ...


def admin_routes(fake: FakeRecords) -> list[Route]:
    async def orders(request: Request) -> Response:
        return JSONResponse({"orders": fake.admin_orders()})

    async def accounts(request: Request) -> Response:
        return JSONResponse({"accounts": fake.admin_accounts()})

    async def faults(request: Request) -> Response:
        return JSONResponse(fake.admin_faults())

    return [
        Route(f"{PREFIX}/orders", orders, methods=["GET"]),
        Route(f"{PREFIX}/accounts", accounts, methods=["GET"]),
        Route(f"{PREFIX}/faults", faults, methods=["GET"]),
    ]
