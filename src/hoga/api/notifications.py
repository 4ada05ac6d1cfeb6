"""The signed-in user's notification channels (contract: /work/briefs/contracts.md,
"Notifications"). Channel URLs go into the vault; only masked forms come back."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import Field, StrictBool

from hoga.api.bounds import Id
from hoga.api.deps import User, get_hoga
from hoga.api.models import Body
from hoga.api.schemas import SIGNED_IN, WITH_BODY, answer, errors
from hoga.api.schemas.accounts import ChannelList, ChannelView, Queued
from hoga.api.views import channel_view
from hoga.domain.errors import ServiceUnavailable
from hoga.notify.service import Notifier

router = APIRouter(prefix="/api/me/notifications", tags=["notifications"])

Kind = Literal["webhook", "telegram", "discord", "slack", "email"]


class ChannelBody(Body):
    kind: Kind
    label: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=4, max_length=2000)
    events: list[str] = Field(default_factory=list, max_length=16)
    enabled: StrictBool = True


class ChannelPatch(Body):
    label: str | None = Field(None, min_length=1, max_length=64)
    url: str | None = Field(None, min_length=4, max_length=2000)
    events: list[str] | None = Field(None, max_length=16)
    enabled: StrictBool | None = None


def _notifier(request: Request) -> Notifier:
    notifier: Notifier | None = get_hoga(request).notifier
    if notifier is None:
        raise ServiceUnavailable(
            "알림을 쓸 수 없습니다 (notifications unavailable)", "notify.unavailable"
        )
    return notifier


@router.get("", **answer(ChannelList, *SIGNED_IN))
async def list_channels(ctx: User, request: Request) -> dict[str, Any]:
    n = _notifier(request)
    return {
        "channels": [channel_view(c) for c in await n.channels(ctx.user_id)],
        "available_events": n.available_events(ctx.user.is_admin),
    }


@router.post("", status_code=201, **answer(ChannelView, *SIGNED_IN, *WITH_BODY, 409))
async def create_channel(body: ChannelBody, ctx: User, request: Request) -> dict[str, Any]:
    channel = await _notifier(request).create(
        ctx.user_id,
        is_admin=ctx.user.is_admin,
        kind=body.kind,
        label=body.label,
        url=body.url,
        events=body.events,
        enabled=body.enabled,
    )
    return channel_view(channel)


@router.patch("/{channel_id}", **answer(ChannelView, *SIGNED_IN, *WITH_BODY, 404))
async def update_channel(
    channel_id: Id, body: ChannelPatch, ctx: User, request: Request
) -> dict[str, Any]:
    channel = await _notifier(request).update(
        ctx.user_id, channel_id, is_admin=ctx.user.is_admin, **body.model_dump(exclude_none=True)
    )
    return channel_view(channel)


@router.delete(
    "/{channel_id}",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "removed"}, **errors(*SIGNED_IN, 404, 422)},
)
async def delete_channel(channel_id: Id, ctx: User, request: Request) -> Response:
    await _notifier(request).delete(ctx.user_id, channel_id)
    return Response(status_code=204)


@router.post("/{channel_id}/test", status_code=202, **answer(Queued, *SIGNED_IN, 404, 422))
async def test_channel(channel_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    await _notifier(request).send_test(ctx.user_id, channel_id)
    return {"queued": True}
