"""Both ASGI layers that tag responses (api/guard.py outermost, api/request_context.py inside)
agree on one request id: a response carries exactly one ``X-Request-Id`` (the merge of issue 12
and issue 15B had each append its own, so clients saw ``id, id``)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import running


async def test_one_request_id_header_whether_given_or_made(tmp_path: Path) -> None:
    async with running(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'hoga.db'}") as h:
        given = await h.http.get("/health", headers={"X-Request-Id": "order-req-1"})
        assert given.headers.get_list("x-request-id") == ["order-req-1"]
        made = await h.http.get("/health")
        ids = made.headers.get_list("x-request-id")
        assert len(ids) == 1 and len(ids[0]) == 32
