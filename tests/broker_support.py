"""What the broker support modules share: an execution-event sink, linking an account through
the API and giving it opening cash in hoga's ledger.

Each broker has a support module of the same shape (``tests/kis_support.py``,
``tests/kiwoom_support.py``, ``tests/openapi_support.py``): constants for its credentials, the
fake (``kis_fake``, ``kiwoom_fake``, ``bridge_running``), an ``account_ref`` for adapter tests,
``link_account`` for a running hoga, and a ``<broker>_user`` that links and funds one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hoga.brokers.base import ExecutionEvent, FillEvent, OrderUpdate


@dataclass
class Collected:
    """Execution events an adapter delivered, in order (set it as the adapter's event sink)."""

    events: list[tuple[int, ExecutionEvent]] = field(default_factory=list)

    async def __call__(self, account_id: int, event: ExecutionEvent) -> None:
        self.events.append((account_id, event))

    def fills(self, broker_order_id: str | None = None) -> list[FillEvent]:
        return [
            e
            for _, e in self.events
            if isinstance(e, FillEvent)
            and (broker_order_id is None or e.fill.broker_order_id == broker_order_id)
        ]

    def updates(self, broker_order_id: str | None = None) -> list[OrderUpdate]:
        return [
            e
            for _, e in self.events
            if isinstance(e, OrderUpdate)
            and (broker_order_id is None or e.report.broker_order_id == broker_order_id)
        ]


async def post_account(
    http: Any, headers: dict[str, str], body: dict[str, Any], seen: list[str] | None = None
) -> dict[str, Any]:
    """Link a broker account through the API (``seen`` collects the response text for the
    secret checks); returns the account's public view."""
    r = await http.post("/api/broker-accounts", json=body, headers=headers)
    if seen is not None:
        seen.append(r.text)
    assert r.status_code == 201, r.text
    view: dict[str, Any] = r.json()
    return view


async def link_fake_account(
    http: Any,
    headers: dict[str, str],
    fake: Any,
    *,
    broker: str,
    env: str,
    account_no: str,
    key: str,
    secret: str,
    seen: list[str] | None = None,
    **extra: str,
) -> dict[str, Any]:
    """Link a ``broker`` account pointing at ``fake`` (its REST and WebSocket URLs) through
    the API; ``extra`` adds the broker's own fields (``hts_id``, ``label``)."""
    body = {
        "broker": broker,
        "env": env,
        "account_no": account_no,
        "app_key": key,
        "app_secret": secret,
        "base_url": fake.base_url,
        "ws_url": fake.ws_url,
        **extra,
    }
    return await post_account(http, headers, body, seen)


async def fund(hoga: Any, user_id: int, account_id: int, amount: int) -> None:
    """Record ``amount`` as the account's opening balance in hoga's ledger.

    hoga does not yet adopt a linked broker account's cash into its ledger (reported to the
    lead); until it does, tests post the opening cash as a deposit."""
    from hoga.store.db import Actor
    from hoga.store.repos import ledger

    async with hoga.db.tx(Actor.user(user_id)) as conn:
        await ledger.post_cash(
            conn, user_id, account_id, amount, "deposit", hoga.clock.now(), note="opening"
        )
