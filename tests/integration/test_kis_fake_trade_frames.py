"""Every one of the 46 H0STCNT0 fields the KIS fake sends is filled, and they agree with each
other and with the fake's market (a public client reads them all)."""

from __future__ import annotations

import asyncio
import json

import httpx
import websockets

from hoga.fakes.kis import KisFakeAccount
from hoga.fakes.kis.frames import TRADE_LAYOUT
from tests.kis_support import ACCOUNT, HTS, KEY, SECRET, kis_fake


async def test_h0stcnt0_frames_fill_all_46_fields_consistently() -> None:
    accounts = [KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS)]
    async with kis_fake("real", accounts) as fake:
        async with httpx.AsyncClient(base_url=fake.base_url) as http:
            r = await http.post(
                "/oauth2/Approval",
                json={"grant_type": "client_credentials", "appkey": KEY, "secretkey": SECRET},
            )
            approval = r.json()["approval_key"]
        records: list[dict[str, str]] = []
        async with websockets.connect(f"{fake.ws_url}/tryitout") as ws:
            for symbol in ("005930", "095340"):  # a bundled symbol and a master-only one
                await ws.send(
                    json.dumps(
                        {
                            "header": {"approval_key": approval, "custtype": "P",
                                       "tr_type": "1", "content-type": "utf-8"},
                            "body": {"input": {"tr_id": "H0STCNT0", "tr_key": symbol}},
                        }
                    )
                )  # fmt: skip
                ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert ack["body"]["rt_cd"] == "0", ack
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while {r["MKSC_SHRN_ISCD"] for r in records} != {"005930", "095340"} or len(
                records
            ) < 40:
                assert loop.time() < deadline, f"only {len(records)} records"
                fake.pump(200)
                try:
                    while True:
                        raw = await asyncio.wait_for(ws.recv(), 0.05)
                        if raw.startswith("0|H0STCNT0|"):
                            _, _, n, payload = raw.split("|", 3)
                            values = payload.split("^")
                            assert len(values) == 46 * int(n)
                            for i in range(int(n)):
                                chunk = values[i * 46 : (i + 1) * 46]
                                records.append(dict(zip(TRADE_LAYOUT, chunk, strict=True)))
                except TimeoutError:
                    pass
    assert len(TRADE_LAYOUT) == 46
    for rec in records:
        empty = [k for k, v in rec.items() if v == ""]
        assert not empty, empty
        price, o, h, low = (
            int(rec[k]) for k in ("STCK_PRPR", "STCK_OPRC", "STCK_HGPR", "STCK_LWPR")
        )
        assert low <= price <= h and low <= o <= h
        assert int(rec["OPRC_VRSS_PRPR"]) == price - o
        assert int(rec["HGPR_VRSS_PRPR"]) == price - h <= 0
        assert int(rec["LWPR_VRSS_PRPR"]) == price - low >= 0
        assert low <= int(rec["WGHN_AVRG_STCK_PRC"]) <= h
        sell_n, buy_n = int(rec["SELN_CNTG_CSNU"]), int(rec["SHNU_CNTG_CSNU"])
        assert int(rec["NTBY_CNTG_CSNU"]) == buy_n - sell_n
        sell_v, buy_v = int(rec["SELN_CNTG_SMTN"]), int(rec["SHNU_CNTG_SMTN"])
        if sell_v:
            assert abs(float(rec["CTTR"]) - buy_v * 100 / sell_v) < 0.01
        assert int(rec["ACML_VOL"]) >= sell_v + buy_v
        assert int(rec["BIDP1"]) < int(rec["ASKP1"])
        diff = int(rec["PRDY_VRSS"])
        sign = rec["PRDY_VRSS_SIGN"]
        assert (diff > 0) == (sign in ("1", "2")) and (diff < 0) == (sign in ("4", "5"))
        assert len(rec["BSOP_DATE"]) == 8 and len(rec["STCK_CNTG_HOUR"]) == 6
