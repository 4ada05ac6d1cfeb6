"""A generated instrument master for the fakes, in the brokers' own formats.

``generate_master`` builds a realistic listing (~2,800 symbols, seeded): the bundled universe
among it, KOSPI and KOSDAQ stocks, ETFs and ETNs, REITs, and a few halted, designated (투자주의
/경고/위험, 관리종목) and liquidation (정리매매) names. ``095340`` (ISC) is always present as an
ordinary KOSDAQ stock outside the bundle, for end-to-end tests.

The KIS fake serves it as ``kospi_code.mst.zip`` / ``kosdaq_code.mst.zip`` (cp949, fixed
width: short code 9 + standard code 12 + name, then a tail of 227 (KOSPI) / 221 (KOSDAQ)
characters laid out as in the official ``stocks_info/kis_*_code_mst.py`` field widths); the
Kiwoom fake as ``ka10099`` rows. Written independently of hoga's parser on purpose (the fake
is the other side of the format).
"""

from __future__ import annotations

import functools
import io
import random
import zipfile
from collections.abc import Iterable
from typing import Final

from hoga.domain import krx
from hoga.domain.market import Listing
from hoga.marketdata.universe import bundled_universe


def _layout(flags: int, *index_flags: str) -> tuple[tuple[str, int], ...]:
    """The tail both markets share, but for the count of unnamed flags after the sector codes
    and the index-membership flags after ``krx300`` (KOSPI has ``kospi``, KOSDAQ none)."""
    return (
        ("group", 2), ("cap_size", 1), ("sector_l", 4), ("sector_m", 4), ("sector_s", 4),
        *((f"f{i}", 1) for i in range(flags)),
        ("base_price", 9), ("lot", 5), ("ovt_lot", 5), ("halted", 1), ("liquidation", 1),
        ("admin", 1), ("warning", 2), ("warning_notice", 1), ("unfaithful", 1), ("backdoor", 1),
        ("lock", 2), ("par_change", 2), ("capital_increase", 2), ("margin", 3), ("credit", 1),
        ("credit_days", 3), ("prev_volume", 12), ("par_value", 12), ("listed_on", 8),
        ("listed_shares", 15), ("capital", 21), ("fiscal_month", 2), ("ipo_price", 7),
        ("preferred", 1), ("short_overheat", 1), ("surge", 1), ("krx300", 1),
        *((name, 1) for name in index_flags),
        ("sales", 9), ("op_income", 9), ("ord_income", 9), ("net_income", 5), ("roe", 9),
        ("base_month", 8), ("market_cap", 9), ("group_company", 3), ("credit_over", 1),
        ("collateral", 1), ("lendable", 1),
    )  # fmt: skip


#: The tail layouts: (name, width); unnamed single-character flags are "f<n>".
KOSPI_TAIL: Final = _layout(26, "kospi")
KOSDAQ_TAIL: Final = _layout(21)
assert sum(w for _, w in KOSPI_TAIL) == 227 and sum(w for _, w in KOSDAQ_TAIL) == 221

_NUMERIC = {
    "base_price", "lot", "ovt_lot", "margin", "credit_days", "prev_volume", "par_value",
    "listed_shares", "capital", "ipo_price", "sales", "op_income", "ord_income", "net_income",
    "roe", "market_cap",
}  # fmt: skip
_WARNING_CODE = {"": "00", "caution": "01", "warning": "02", "risk": "03"}

_SYLLABLES = "한국대성동양신일삼우현대세진아이케이엘에스티엔지원풍코리아미래나노바이오".replace(
    " ", ""
)
_SUFFIXES = (
    "전자", "바이오", "테크", "홀딩스", "제약", "화학", "건설", "에너지", "소재", "시스템",
    "반도체", "로직스", "산업", "통신", "푸드", "엔터", "금속", "정밀", "게임즈", "메디컬",
)  # fmt: skip
_ETF_BRANDS = ("KODEX", "TIGER", "KBSTAR", "ARIRANG", "HANARO", "ACE", "SOL", "PLUS")
_ETF_THEMES = (
    "200", "코스닥150", "미국S&P500", "나스닥100", "2차전지", "반도체", "고배당", "인버스",
    "레버리지", "단기채권", "국고채10년", "헬스케어", "은행", "리츠", "골드선물", "원유선물",
)  # fmt: skip
_ETN_ISSUERS = ("신한", "삼성", "미래에셋", "KB", "메리츠", "한투", "NH")


def _std_code(symbol: str) -> str:
    check = sum(ord(c) for c in symbol) % 10
    return f"KR7{symbol}00{check}"


def _price(rng: random.Random, kind: str) -> int:
    raw = int(10 ** rng.uniform(2.8, 5.6)) if kind == "stock" else int(10 ** rng.uniform(3.6, 4.8))
    return max(krx.round_to_tick(raw, kind), 100)


@functools.cache
def generate_master(seed: int = 7, size: int = 2800) -> tuple[Listing, ...]:
    """See the module docstring; the same seed gives the same master."""
    rng = random.Random(seed)
    out: dict[str, Listing] = {}
    for inst in bundled_universe():
        market = inst.market if inst.market in ("KOSPI", "KOSDAQ") else "KOSPI"
        group = {"etf": "EF", "etn": "EN"}.get(inst.kind, "ST")
        out[inst.symbol] = Listing(
            inst.symbol, inst.name, market, inst.kind, group, _std_code(inst.symbol),
            inst.base_price, rng.randint(5, 600) * 1_000_000, nxt=inst.kind == "stock",
            listed_on=f"{rng.randint(1975, 2020)}0{rng.randint(1, 9)}1{rng.randint(0, 9)}",
        )  # fmt: skip
    out["095340"] = Listing(
        "095340", "ISC", "KOSDAQ", "stock", "ST", _std_code("095340"), 61_200, 21_190_000,
        nxt=True, listed_on="20071030",
    )  # fmt: skip
    names: set[str] = {x.name for x in out.values()}
    plan = [("etf", 240), ("etn", 90), ("reit", 20)]
    n_stock = size - len(out) - sum(n for _, n in plan)
    plan.insert(0, ("stock", n_stock))
    for kind, count in plan:
        made = 0
        while made < count:
            if kind == "etn":
                code = f"{rng.randint(500000, 599999):06d}"
            elif kind == "etf":
                code = f"{rng.randint(100000, 499999):06d}"
            else:
                code = f"{rng.randint(1000, 499999):06d}"
            code = code[:5] + "0" if kind in ("stock", "reit") and rng.random() < 0.8 else code
            if code in out or not krx.is_valid_symbol(code):
                continue
            if kind == "etf":
                name = f"{rng.choice(_ETF_BRANDS)} {rng.choice(_ETF_THEMES)}"
            elif kind == "etn":
                name = f"{rng.choice(_ETN_ISSUERS)} {rng.choice(_ETF_THEMES)} ETN"
            elif kind == "reit":
                name = f"{rng.choice(_SYLLABLES)}{rng.choice(_SYLLABLES)}리츠"
            else:
                name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
                name += rng.choice(_SUFFIXES)
            if name in names:
                name = f"{name}{len(names) % 97}"
                if name in names:
                    continue
            names.add(name)
            tick_kind = "stock" if kind == "reit" else kind
            market = "KOSPI" if kind in ("etf", "etn", "reit") or rng.random() < 0.36 else "KOSDAQ"
            roll = rng.random()
            out[code] = Listing(
                symbol=code,
                name=name,
                market=market,
                kind=tick_kind,
                group={"stock": "ST", "etf": "EF", "etn": "EN", "reit": "RT"}[kind],
                std_code=_std_code(code),
                base_price=_price(rng, tick_kind),
                listed_shares=rng.randint(1, 300) * 1_000_000,
                nxt=kind == "stock" and rng.random() < 0.3,
                halted=roll < 0.01,
                admin_issue=0.01 <= roll < 0.025,
                warning=("caution" if roll < 0.04 else "warning" if roll < 0.047 else "risk")
                if 0.025 <= roll < 0.05
                else "",
                liquidation=0.05 <= roll < 0.053,
                listed_on=f"{rng.randint(1980, 2026)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
            )
            made += 1
    return tuple(sorted(out.values(), key=lambda x: x.symbol))


def _tail(x: Listing, layout: tuple[tuple[str, int], ...]) -> str:
    values = {
        "group": x.group,
        "cap_size": "1",
        "base_price": x.base_price,
        "lot": 1,
        "ovt_lot": 1,
        "halted": "Y" if x.halted else "N",
        "liquidation": "Y" if x.liquidation else "N",
        "admin": "Y" if x.admin_issue else "N",
        "warning": _WARNING_CODE[x.warning],
        "warning_notice": "N",
        "margin": 40 if x.designation else 20,
        "credit": "N" if x.designation or x.halted else "Y",
        "par_value": 500 if x.kind == "stock" else 0,
        "listed_on": x.listed_on,
        "listed_shares": x.listed_shares // 1000,
        "fiscal_month": "12",
        "preferred": "0",
    }
    parts = []
    for name, width in layout:
        v = values.get(name, 0 if name in _NUMERIC else "N" if width == 1 else "")
        if name in _NUMERIC:
            parts.append(str(v).rjust(width, "0")[-width:])
        else:
            parts.append(str(v).ljust(width)[:width])
    return "".join(parts)


def kis_mst(listings: Iterable[Listing], market: str) -> bytes:
    """The ``kospi_code.mst`` / ``kosdaq_code.mst`` text for one market, cp949."""
    layout = KOSPI_TAIL if market == "KOSPI" else KOSDAQ_TAIL
    lines = []
    for x in listings:
        if x.market != market:
            continue
        head = x.symbol.ljust(9) + x.std_code.ljust(12) + x.name.ljust(40)
        lines.append(head + _tail(x, layout) + "\n")
    return "".join(lines).encode("cp949")


def kis_mst_zip(listings: Iterable[Listing], market: str) -> bytes:
    name = "kospi_code.mst" if market == "KOSPI" else "kosdaq_code.mst"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, kis_mst(listings, market))
    return buf.getvalue()


_KIWOOM_MARKETS = {"KOSPI": ("0", "거래소"), "KOSDAQ": ("10", "코스닥"), "KONEX": ("50", "코넥스")}


def kiwoom_row(x: Listing) -> dict[str, str]:
    """One ``ka10099`` list item: every value a string, as Kiwoom sends them."""
    audit = {
        "liquidation": "정리매매",
        "admin": "관리종목",
        "risk": "투자위험",
        "warning": "투자경고",
        "caution": "투자주의",
    }.get(x.designation, "정상")
    code, name = _KIWOOM_MARKETS.get(x.market, ("0", "거래소"))
    if x.kind == "etf":
        code, name = "8", "ETF"
    elif x.kind == "etn":
        code, name = "60", "ETN"
    state = "거래정지" if x.halted else "증거금20%|담보대출|신용가능"
    warning = {"liquidation": "2", "risk": "4", "warning": "5", "caution": "1"}.get(
        x.designation, "0"
    )
    return {
        "code": x.symbol,
        "name": x.name,
        "listCount": str(x.listed_shares).rjust(16, "0"),
        "auditInfo": audit,
        "regDay": x.listed_on,
        "lastPrice": str(x.base_price).rjust(8, "0"),
        "state": state,
        "marketCode": code,
        "marketName": name,
        "upName": "",
        "upSizeName": "",
        "companyClassName": "",
        "orderWarning": warning,
        "nxtEnable": "Y" if x.nxt else "N",
    }


def kiwoom_market(x: Listing) -> str:
    """The ``mrkt_tp`` a listing answers to (0 KOSPI, 10 KOSDAQ, 8 ETF, 60 ETN)."""
    return kiwoom_row(x)["marketCode"]
