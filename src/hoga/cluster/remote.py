"""Requests that must run on the user's owner, asked over NATS request/reply.

A modify (정정) keeps the requested change in the memory of the server that will send it
(``execution/modifying.py``): written to the database as ``MODIFY_PENDING`` by one server and
sent by another, the change would be lost. So a modify for a user owned elsewhere is not
handed off like an order: it is *forwarded* - the owner runs it (checks, risk, persist, queue,
send) and answers with the order id or the error it raised, which this server raises in turn,
so the API answers exactly as the owner would. No owner answering within the wait: 503, and
nothing was written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hoga.cluster.bus import ClusterBus
from hoga.domain import errors
from hoga.domain.errors import HogaError, ServiceUnavailable

log = logging.getLogger(__name__)

Modify = Callable[[int, int, int | None, int | None, str | None], Awaitable[int]]

WAIT = 5.0  # seconds an owner has to answer a forwarded modify


def _error_body(e: HogaError) -> dict[str, Any]:
    return {"type": type(e).__name__, "message": e.message, "code": e.code, "details": e.details}


def _raise(body: dict[str, Any]) -> None:
    cls = getattr(errors, str(body.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, HogaError)):
        cls = HogaError
    raise cls(str(body.get("message")), str(body.get("code")), **(body.get("details") or {}))


class RemoteModify:
    """Forward a modify to the user's owner; serve the ones forwarded to this server.

    Contract: ``forward`` returns the order id the owner modified, or raises the owner's
    error, or ``ServiceUnavailable`` when no owner answered (nothing was changed then).
    """

    def __init__(self, bus: ClusterBus, run: Modify, owns: Callable[[int], bool]) -> None:
        self.bus = bus
        self._run = run
        self._owns = owns

    async def start(self) -> None:
        # A queue group per user subject is not needed: only the owner answers.
        await self.bus.client.subscribe(self.bus.subject("modify") + ".*", cb=self._serve)

    async def forward(
        self, user_id: int, order_id: int, price: int | None, quantity: int | None, ip: str | None
    ) -> int:
        body = {"order_id": order_id, "price": price, "quantity": quantity, "ip": ip}
        try:
            raw = await self.bus.request(
                self.bus.subject("modify", str(user_id)), json.dumps(body).encode(), wait=WAIT
            )
        except Exception as e:
            log.warning("cluster: modify for user %s not answered (%s)", user_id, type(e).__name__)
            raise ServiceUnavailable(
                "이 사용자의 주문을 처리하는 서버가 지금 없습니다. 잠시 후 다시 시도하세요 "
                "(no server owns this user right now; try again shortly)",
                "cluster.no_owner",
            ) from None
        answer: dict[str, Any] = json.loads(raw)
        if "error" in answer:
            _raise(answer["error"])
        return int(answer["order_id"])

    async def _serve(self, msg: Any) -> None:
        user_id = int(msg.subject.rsplit(".", 1)[1])
        if not self._owns(user_id):
            return  # the owner answers; silence lets the requester time out if there is none
        body = json.loads(msg.data)
        try:
            order_id = await self._run(
                user_id, int(body["order_id"]), body.get("price"), body.get("quantity"),
                body.get("ip"),
            )  # fmt: skip
            answer: dict[str, Any] = {"order_id": order_id}
        except HogaError as e:
            answer = {"error": _error_body(e)}
        except Exception:
            log.exception("cluster: forwarded modify for user %s failed", user_id)
            answer = {"error": _error_body(ServiceUnavailable("modify failed", "cluster.failed"))}
        await msg.respond(json.dumps(answer, default=str).encode())
