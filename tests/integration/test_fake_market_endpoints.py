"""The fakes' market-data endpoints over real HTTP, in the brokers' wire formats: what public
clients call (KIS inquire-price's full output, the book, charts, search-info, buyable amount,
the overseas inquiries, master files, JSON errors for unknown paths) and the Kiwoom APIs
(ka10099 paged, ka10004, ka10080/81, kt00004; numbers in requests refused)."""

from __future__ import annotations

from typing import Any

import httpx

from hoga.brokers.kis.master import parse_zip
from hoga.fakes.kis import KisFakeAccount
from tests.kis_support import ACCOUNT, HTS, KEY, SECRET, kis_fake
from tests.kiwoom_support import APP_KEY, APP_SECRET, kiwoom_fake

_Q = "/uapi/domestic-stock/v1/quotations"


async def _kis_session(http: httpx.AsyncClient) -> dict[str, str]:
    r = await http.post(
        "/oauth2/tokenP",
        json={"grant_type": "client_credentials", "appkey": KEY, "appsecret": SECRET},
    )
    assert r.status_code == 200, r.text
    return {
        "authorization": f"Bearer {r.json()['access_token']}",
        "appkey": KEY,
        "appsecret": SECRET,
        "custtype": "P",
    }


async def test_kis_fake_serves_what_public_clients_call() -> None:
    accounts = [KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS)]
    async with (
        kis_fake("real", accounts, rate=1000.0) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        # Master files: no credentials, zip of cp949 fixed-width text.
        for name, market in (("kospi_code.mst.zip", "KOSPI"), ("kosdaq_code.mst.zip", "KOSDAQ")):
            r = await http.get(f"/common/master/{name}")
            assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
            assert len(parse_zip(r.content, market)) > 900
        h = await _kis_session(http)
        cano, prdt = ACCOUNT.split("-")

        async def get(path: str, tr: str, **params: str) -> dict[str, Any]:
            r = await http.get(path, params=params, headers={**h, "tr_id": tr})
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            assert body["rt_cd"] == "0", body
            return body

        out = (await get(f"{_Q}/inquire-price", "FHKST01010100",
                         FID_COND_MRKT_DIV_CODE="J", FID_INPUT_ISCD="095340"))["output"]  # fmt: skip
        assert len(out) >= 75 and all(isinstance(v, str) for v in out.values())
        assert out["stck_sdpr"] == "61200" and out["stck_shrn_iscd"] == "095340"
        assert int(out["stck_llam"]) < int(out["stck_prpr"]) < int(out["stck_mxpr"])

        book = await get(f"{_Q}/inquire-asking-price-exp-ccn", "FHKST01010200",
                         FID_COND_MRKT_DIV_CODE="J", FID_INPUT_ISCD="005930")  # fmt: skip
        o1 = book["output1"]
        asks = [int(o1[f"askp{i}"]) for i in range(1, 11)]
        bids = [int(o1[f"bidp{i}"]) for i in range(1, 11)]
        assert asks == sorted(asks) and bids == sorted(bids, reverse=True) and bids[0] < asks[0]
        assert int(o1["total_askp_rsqn"]) >= sum(int(o1[f"askp_rsqn{i}"]) for i in range(1, 11))

        daily = await get(f"{_Q}/inquire-daily-itemchartprice", "FHKST03010100",
                          FID_COND_MRKT_DIV_CODE="J", FID_INPUT_ISCD="005930",
                          FID_INPUT_DATE_1="20260101", FID_INPUT_DATE_2="20261231",
                          FID_PERIOD_DIV_CODE="D", FID_ORG_ADJ_PRC="0")  # fmt: skip
        rows = daily["output2"]
        assert 0 < len(rows) <= 100
        dates = [r["stck_bsop_date"] for r in rows]
        assert dates == sorted(dates, reverse=True)

        info = await get(f"{_Q}/search-info", "CTPF1604R", PDNO="095340", PRDT_TYPE_CD="300")
        assert info["output"]["prdt_abrv_name"] == "ISC"

        psbl = await get("/uapi/domestic-stock/v1/trading/inquire-psbl-order", "TTTC8908R",
                         CANO=cano, ACNT_PRDT_CD=prdt, PDNO="005930", ORD_UNPR="70000",
                         ORD_DVSN="00", CMA_EVLU_AMT_ICLD_YN="N", OVRS_ICLD_YN="N")  # fmt: skip
        cash = fake.account(ACCOUNT).cash
        assert int(psbl["output"]["ord_psbl_cash"]) == cash
        assert int(psbl["output"]["max_buy_qty"]) * 70000 <= cash

        over = await get("/uapi/overseas-stock/v1/trading/inquire-balance", "TTTS3012R",
                         CANO=cano, ACNT_PRDT_CD=prdt, OVRS_EXCG_CD="NASD", TR_CRCY_CD="USD",
                         CTX_AREA_FK200="", CTX_AREA_NK200="")  # fmt: skip
        assert over["output1"] == []
        pending = await get("/uapi/overseas-stock/v1/trading/inquire-nccs", "TTTS3018R",
                            CANO=cano, ACNT_PRDT_CD=prdt, OVRS_EXCG_CD="NASD", SORT_SQN="DS",
                            CTX_AREA_FK200="", CTX_AREA_NK200="")  # fmt: skip
        assert pending["output"] == []

        r = await http.get(f"{_Q}/inquire-price", headers={**h, "tr_id": "FHKST01010100"},
                           params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": "999999"})  # fmt: skip
        assert r.json()["rt_cd"] == "1" and r.json()["msg_cd"] == "APBK0656"
        r = await http.get("/uapi/domestic-stock/v1/quotations/no-such-thing", headers=h)
        assert r.status_code == 404 and r.json()["rt_cd"] == "1"


async def test_kiwoom_fake_market_apis_speak_strings_and_refuse_numbers() -> None:
    async with (
        kiwoom_fake(page_size=200) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        r = await http.post(
            "/oauth2/token",
            json={"grant_type": "client_credentials", "appkey": APP_KEY, "secretkey": APP_SECRET},
            headers={"api-id": "au10001"},
        )
        token = r.json()["token"]

        async def call(api_id: str, path: str, body: dict[str, Any], **hdr: str) -> httpx.Response:
            return await http.post(
                path, json=body,
                headers={"authorization": f"Bearer {token}", "api-id": api_id, **hdr},
            )  # fmt: skip

        rows: list[dict[str, Any]] = []
        cont, key = "", ""
        for _ in range(50):
            r = await call("ka10099", "/api/dostk/stkinfo", {"mrkt_tp": "10"},
                           **({"cont-yn": cont, "next-key": key} if cont else {}))  # fmt: skip
            assert r.status_code == 200, r.text
            rows += r.json()["list"]
            if r.headers.get("cont-yn") != "Y":
                break
            cont, key = "Y", r.headers["next-key"]
        kosdaq = [x for x in fake.master if x.market == "KOSDAQ" and x.kind == "stock"]
        assert len(rows) == len(kosdaq) > 200  # more than one page
        assert all(isinstance(v, str) for row in rows for v in row.values())
        assert any(row["code"] == "095340" for row in rows)

        for api_id, body in (("ka10099", {"mrkt_tp": 10}), ("ka10001", {"stk_cd": 5930})):
            r = await call(api_id, "/api/dostk/stkinfo", body)
            assert r.json()["return_code"] == 2 and "1517" in r.json()["return_msg"], r.text

        r = await call("ka10004", "/api/dostk/mrkcond", {"stk_cd": "095340"})
        body = r.json()
        assert body["return_code"] == 0 and body["sel_fpr_bid"] and body["buy_10th_pre_bid"]
        assert all(isinstance(v, str) for k, v in body.items() if k != "return_code")

        r = await call("ka10080", "/api/dostk/chart",
                       {"stk_cd": "005930", "tic_scope": "1", "upd_stkpc_tp": "1"})  # fmt: skip
        assert r.status_code == 200, r.text
        r = await call("kt00004", "/api/dostk/acnt", {"qry_tp": "0", "dmst_stex_tp": "KRX"})
        body = r.json()
        assert body["return_code"] == 0 and int(body["entr"]) > 0
        assert isinstance(body["stk_acnt_evlt_prst"], list)


async def test_kis_fake_limits_approval_keys_and_token_reissues() -> None:
    accounts = [KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS)]
    async with (
        kis_fake("real", accounts, token_interval=60.0) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        body = {"grant_type": "client_credentials", "appkey": KEY, "secretkey": SECRET}
        first = await http.post("/oauth2/Approval", json=body)
        assert first.status_code == 200 and first.json()["approval_key"]
        again = await http.post("/oauth2/Approval", json=body)  # within the second
        assert again.status_code == 500 and again.json()["msg_cd"] == "EGW00201"
        assert fake.approvals_throttled == 1
        token = {"grant_type": "client_credentials", "appkey": KEY, "appsecret": SECRET}
        assert (await http.post("/oauth2/tokenP", json=token)).status_code == 200
        r = await http.post("/oauth2/tokenP", json=token)
        assert r.status_code == 403 and r.json()["error_code"] == "EGW00133"
        fake.token_interval = 0.0  # configurable (hoga fake-broker --token-interval)
        assert (await http.post("/oauth2/tokenP", json=token)).status_code == 200
