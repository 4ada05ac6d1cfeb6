"""The instrument master for admins: its state and a sync on demand.

``GET /api/admin/symbols`` -> how many symbols are stored, when and from where they were
synced, whether they are the server's universe (a broker feed), the last sync's counts or
error. ``POST /api/admin/symbols/sync`` syncs now from the configured source (as the daily
job does) and answers with the counts; a broken listing is refused with 502
``symbols.sync_refused`` and nothing changes; an unreachable source is 503
``symbols.source_unavailable``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request

from hoga.api.deps import Admin, get_hoga
from hoga.api.schemas import SIGNED_IN, answer
from hoga.api.schemas.market import InstrumentMaster, SyncResult
from hoga.domain.errors import Conflict, HogaError, ServiceUnavailable
from hoga.marketdata.instruments import SyncRefused

router = APIRouter(prefix="/api/admin/symbols", tags=["admin"])
log = logging.getLogger(__name__)


class SyncFailed(HogaError):
    status = 502


@router.get("", **answer(InstrumentMaster, *SIGNED_IN))
async def status(ctx: Admin, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    count, synced_at, source = await hoga.instruments.summary()
    last = hoga.instruments.last_sync
    return {
        "stored": count,
        "synced_at": synced_at.isoformat() if synced_at else None,
        "source": source,
        "universe": len(hoga.universe),
        "applied": hoga.instruments.apply,
        "sync_at": hoga.settings.symbols_sync_at,
        "last_sync": None
        if last is None
        else {"symbols": last.symbols, "halted": last.halted, "designated": last.designated},
        "last_error": hoga.instruments.last_error,
    }


@router.post("/sync", **answer(SyncResult, *SIGNED_IN, 409, 502))
async def sync(ctx: Admin, request: Request) -> dict[str, Any]:
    hoga = get_hoga(request)
    if not hoga.live_feed and hoga.settings.symbols_source == "auto":
        # The simulated market trades its bundled demo universe; nothing to fetch (and an
        # operator who wants the master before switching feeds names the source).
        raise Conflict(
            "모의 시장은 내장 종목으로 거래합니다. 증권사 시세를 연결하거나 HOGA_SYMBOLS_SOURCE를 "
            "지정하세요 (the simulated market trades its bundled symbols; link a broker feed or "
            "set HOGA_SYMBOLS_SOURCE)",
            "symbols.simulated",
        )
    source = hoga.instrument_source()
    if source is None:
        raise ServiceUnavailable(
            "종목 마스터를 받을 키움 계좌가 없습니다 (no Kiwoom feed account to read ka10099)",
            "symbols.source_unavailable",
        )
    try:
        result = await hoga.instruments.sync(source)
    except SyncRefused as e:
        raise SyncFailed(
            f"종목 마스터가 비정상이라 반영하지 않았습니다 (listing refused: {e})",
            "symbols.sync_refused",
        ) from None
    except HogaError:
        raise
    except Exception as e:
        # Names the failure only: a broker's message may quote request details.
        log.warning("symbols sync from %s failed: %s", source.name, type(e).__name__)
        raise ServiceUnavailable(
            f"종목 마스터를 받지 못했습니다 (the {source.name} listing is unavailable: "
            f"{type(e).__name__})",
            "symbols.source_unavailable",
        ) from None
    return {
        "source": result.source,
        "symbols": result.symbols,
        "halted": result.halted,
        "designated": result.designated,
        "applied": result.applied,
    }
