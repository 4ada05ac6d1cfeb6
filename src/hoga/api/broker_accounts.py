"""Broker accounts: link (credentials go to the vault), list (masked), test, remove."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from hoga.api.bounds import Id
from hoga.api.deps import User, client_ip, get_hoga
from hoga.api.models import AccountBody
from hoga.api.schemas import SIGNED_IN, WITH_BODY, Ok, answer
from hoga.api.schemas.accounts import AccountTest, BrokerAccountList, BrokerAccountView
from hoga.api.views import account_view
from hoga.domain.errors import InvalidInput
from hoga.execution.account_linking import LinkRequest

router = APIRouter(prefix="/api/broker-accounts", tags=["broker-accounts"])


@router.get("", **answer(BrokerAccountList, *SIGNED_IN))
async def list_accounts(ctx: User, request: Request) -> dict[str, Any]:
    rows = await get_hoga(request).accounts.list_accounts(ctx.user_id)
    return {"accounts": [account_view(a, cash) for a, cash in rows]}


@router.post("", status_code=201, **answer(BrokerAccountView, *SIGNED_IN, *WITH_BODY, 409))
async def link_account(body: AccountBody, ctx: User, request: Request) -> dict[str, Any]:
    if body.broker == "paper":
        raise InvalidInput(
            "모의투자 계좌는 자동으로 만들어집니다 (paper accounts are created for you)",
            "account.bad_broker",
            field="broker",
        )
    hoga = get_hoga(request)
    acct = await hoga.accounts.link(
        ctx.user_id,
        LinkRequest(
            broker=body.broker,
            env=body.env,
            account_no=body.account_no,
            app_key=body.app_key,
            app_secret=body.app_secret,
            hts_id=body.hts_id,
            label=body.label,
            base_url=body.base_url,
            ws_url=body.ws_url,
            commission_rate=body.commission_rate,
        ),
        ip=client_ip(request),
    )
    return account_view(acct, 0)


@router.get("/{account_id}", **answer(BrokerAccountView, *SIGNED_IN, 404, 422))
async def get_account(account_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    acct = await hoga.accounts.get(ctx.user_id, account_id)
    cash = {a.id: c for a, c in await hoga.accounts.list_accounts(ctx.user_id)}.get(account_id)
    return account_view(acct, cash)


@router.post("/{account_id}/test", **answer(AccountTest, *SIGNED_IN, 404, 422))
async def test_account(account_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    return await get_hoga(request).accounts.test(ctx.user_id, account_id, ip=client_ip(request))


@router.delete("/{account_id}", **answer(Ok, *SIGNED_IN, 404, 409, 422))
async def remove_account(account_id: Id, ctx: User, request: Request) -> dict[str, Any]:
    await get_hoga(request).accounts.remove(ctx.user_id, account_id, ip=client_ip(request))
    return {"ok": True}
