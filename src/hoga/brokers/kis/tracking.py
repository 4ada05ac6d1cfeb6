"""What the KIS adapter remembers of orders, and how notices and reports become events.

KIS has no client order ids and gives a modified order a new number, so the adapter keeps,
per (account, order number): what it knows of the order (``Known``: branch, client order id,
symbol, side, type, quantity, price, venue), the modify chains (``root`` <- modify numbers,
``head`` = the number now resting), the reductions whose cancel notices must not end the order,
and the executions counted from notices versus reports (``notice_cum`` / ``reported_cum``), so a
notice arriving after a report's catch-up is not booked twice. Pure bookkeeping: no I/O (the
broker fetches, this reads).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from hoga.brokers.base import (
    ExecutionEvent,
    FillEvent,
    FillReport,
    OrderStatusReport,
    OrderUpdate,
)
from hoga.brokers.kis import wire
from hoga.domain.clock import KST
from hoga.domain.orders import OrderStatus, OrderType, Side

log = logging.getLogger(__name__)
S = OrderStatus


@dataclass
class Known:
    """What the adapter remembers of an order (KIS has no client order ids)."""

    org_no: str | None = None
    client_order_id: str | None = None
    symbol: str = ""
    side: Side | None = None
    type: OrderType = OrderType.LIMIT
    qty: int = 0
    price: int | None = None
    venue: str = "KRX"


class KisTracker:
    """The adapter's memory of every account's orders; see the module docstring."""

    def __init__(self) -> None:
        self.known: dict[tuple[int, str], Known] = {}
        self.notice_fills: dict[int, list[FillReport]] = defaultdict(list)
        self.fill_ids: dict[int, set[str]] = defaultdict(set)
        self.notice_cum: dict[tuple[int, str], int] = {}
        self.reported_cum: dict[tuple[int, str], int] = {}
        # Modify chains: a modify's number -> the number it replaced, and the order hoga knows
        # (its root) -> the number now resting, which a further modify or cancel must name.
        self.root: dict[tuple[int, str], str] = {}
        self.head: dict[tuple[int, str], str] = {}
        self.reductions: dict[tuple[int, str], int] = {}

    def fill_reports(self, account_id: int, day: date) -> list[FillReport]:
        """Executions seen as notices by this process on ``day``."""
        return [
            f
            for f in self.notice_fills.get(account_id, [])
            if datetime.fromtimestamp(f.ts, KST).date() == day
        ]

    def link(self, account_id: int, root: str, odno: str) -> None:
        """``odno`` (a modify's number) now carries the order hoga knows as ``root``."""
        self.root[(account_id, odno)] = root
        self.head[(account_id, root)] = odno

    def root_of(self, account_id: int, odno: str) -> str:
        seen = 0
        while (account_id, odno) in self.root and seen < 100:
            odno = self.root[(account_id, odno)]
            seen += 1
        return odno

    def fold_chains(
        self, account_id: int, reports: list[OrderStatusReport]
    ) -> list[OrderStatusReport]:
        """One report per order hoga placed: a modified order's numbers are folded into its
        root - executions summed over every number, price and state from the live one."""
        groups: dict[str, list[OrderStatusReport]] = {}
        for rep in reports:
            groups.setdefault(self.root_of(account_id, rep.broker_order_id), []).append(rep)
        out = []
        for root, parts in groups.items():
            if len(parts) == 1 and parts[0].broker_order_id == root:
                out.append(parts[0])
                continue
            first = next((p for p in parts if p.broker_order_id == root), parts[0])
            head = parts[-1]
            filled = sum(p.filled_qty for p in parts)
            amount = sum(p.filled_amount or p.avg_price * p.filled_qty for p in parts)
            live = [p for p in parts if p.status in (S.ACCEPTED, S.PARTIALLY_FILLED)]
            known = self.known.get((account_id, root))
            qty = known.qty if known is not None and known.qty else first.qty
            if live:
                qty = filled + sum(p.qty - p.filled_qty for p in live)
                status = S.PARTIALLY_FILLED if filled else S.ACCEPTED
            elif filled >= qty:
                status = S.FILLED
            else:
                status = head.status
            ck = (account_id, root)
            self.reported_cum[ck] = max(self.reported_cum.get(ck, 0), filled)
            if known is None or known.client_order_id is None:
                self.notice_cum[ck] = max(self.notice_cum.get(ck, 0), filled)
            out.append(
                replace(
                    head,
                    broker_order_id=root,
                    client_order_id=first.client_order_id,
                    qty=qty,
                    filled_qty=filled,
                    filled_amount=amount if filled else None,
                    avg_price=amount // filled if filled else 0,
                    status=status,
                    ts=first.ts,
                    org_no=first.org_no,
                )
            )
        return out

    def report_from_row(
        self,
        account_id: int,
        r: dict[str, Any],
        day: date,
        today: date,
        cancelled: set[str],
    ) -> OrderStatusReport | None:
        odno = wire.norm_order_no(str(r.get("odno") or ""))
        side = wire.SIDE_OF.get(str(r.get("sll_buy_dvsn_cd") or ""))
        if not odno or side is None:
            return None
        qty = wire.to_int(r.get("ord_qty"))
        filled = wire.to_int(r.get("tot_ccld_qty"))
        remaining = wire.to_int(r.get("rmn_qty"), max(qty - filled, 0))
        rejected = wire.to_int(r.get("rjct_qty"))
        cancel_qty = wire.to_int(r.get("cnc_cfrm_qty"))
        otype = wire.ORD_TYPE_OF.get(str(r.get("ord_dvsn_cd") or "00"), OrderType.LIMIT)
        price = wire.to_int(r.get("ord_unpr")) or None
        if qty > 0 and filled >= qty:
            status = S.FILLED
        elif rejected > 0 and filled == 0 and remaining == 0:
            status = S.REJECTED
        elif remaining == 0 and filled < qty:
            # Cancelled (in full, or the rest after a modify moved it): a partial cancel
            # leaves the order working with fewer shares.
            status = S.CANCELLED
        elif remaining > 0 and ("rmn_qty" not in r) and (cancel_qty > 0 or odno in cancelled):
            # No remaining quantity in the row: a cancel mark is all there is to go by.
            status = S.CANCELLED
        elif day < today:
            status = S.EXPIRED
        elif filled > 0:
            status = S.PARTIALLY_FILLED
        else:
            status = S.ACCEPTED
        if status in (S.ACCEPTED, S.PARTIALLY_FILLED) and r.get("rmn_qty") not in (None, ""):
            # What is working now: a partial cancel (a modify's reduction) left fewer shares.
            qty = filled + remaining
        amount = wire.to_int(r.get("tot_ccld_amt"))
        avg = wire.round_won(r.get("avg_prvs")) or (amount // filled if filled else 0)
        symbol = str(r.get("pdno") or "")
        org = str(r.get("ord_gno_brno") or "") or None
        known = self.known.setdefault((account_id, odno), Known())
        known.org_no = known.org_no or org
        known.symbol = known.symbol or symbol
        known.side = known.side or side
        known.type = otype
        known.qty = known.qty or qty
        known.price = known.price if known.price is not None else price
        venue = str(r.get("excg_id_dvsn_cd") or r.get("excg_id_dvsn_Cd") or "")
        if venue in wire.VENUES:
            known.venue = venue
        ck = (account_id, odno)
        if ck not in self.notice_cum:
            # An order placed by this process has had every notice since its birth counted
            # (none yet); any other (placed before a restart, or elsewhere) starts from what
            # this report already accounts for.
            self.notice_cum[ck] = 0 if known.client_order_id is not None else filled
        self.reported_cum[ck] = max(self.reported_cum.get(ck, 0), filled)
        return OrderStatusReport(
            broker_order_id=odno,
            client_order_id=known.client_order_id,
            symbol=symbol,
            side=side,
            type=otype,
            qty=qty,
            price=price if otype.needs_price else None,
            filled_qty=filled,
            avg_price=avg,
            filled_amount=amount if filled else None,
            status=status,
            ts=wire.kst_ts(
                str(r.get("ord_dt") or day.strftime("%Y%m%d")), str(r.get("ord_tmd") or "")
            ),
            org_no=org,
            reason="broker refused" if status == S.REJECTED else None,
        )

    def notice(self, account_id: int, f: dict[str, str], today: date) -> ExecutionEvent | None:
        """The event an execution notice (its fields by name) makes, if any: a fill, or the
        order's acceptance, refusal or cancel."""
        odno = wire.norm_order_no(f.get("ODER_NO", ""))
        side = wire.SIDE_OF.get(f.get("SELN_BYOV_CLS", ""))
        symbol = f.get("STCK_SHRN_ISCD", "").strip()
        if not odno or side is None:
            return None
        ts = wire.kst_ts(today, f.get("STCK_CNTG_HOUR", ""))
        known = self.known.setdefault((account_id, odno), Known(symbol=symbol, side=side))
        branch = f.get("BRNC_NO", "").strip()
        if branch and not known.org_no:
            known.org_no = branch
        orig = wire.norm_order_no(f.get("OODER_NO", ""))
        if f.get("RCTF_CLS") == "1" and orig and orig != odno:
            # A modify's number: it carries on the order it replaced.
            self.link(account_id, self.root_of(account_id, orig), odno)
        root = self.root_of(account_id, odno)
        if f.get("CNTG_YN") == "2":
            rk = self.known.get((account_id, root), known)
            return self._fill(account_id, root, rk, symbol, side, f, ts)
        otype = wire.ORD_TYPE_OF.get(f.get("ODER_KIND", ""), known.type)
        qty = wire.to_int(f.get("ODER_QTY")) or known.qty
        price = wire.to_int(f.get("ODER_PRC")) or known.price
        target, status = root, S.ACCEPTED
        reason = None
        if f.get("RFUS_YN") == "1":
            if f.get("RCTF_CLS") in ("1", "2"):
                log.warning("kis: a modify/cancel of order %s was refused", orig or odno)
                return None
            status, reason = S.REJECTED, "KIS 주문 거부 (refused)"
        elif f.get("ACPT_YN") == "3":
            status = S.CANCELLED
        elif f.get("RCTF_CLS") == "2":
            if not orig:
                return None
            reduced = self.reductions.get((account_id, orig))
            if reduced is not None and reduced == qty:
                # The partial cancel of a modify that reduced the order: it stays working.
                del self.reductions[(account_id, orig)]
                return None
            target, status = self.root_of(account_id, orig), S.CANCELLED
        tk = self.known.get((account_id, target), known)
        report = OrderStatusReport(
            broker_order_id=target,
            client_order_id=tk.client_order_id,
            symbol=symbol,
            side=side,
            type=otype,
            qty=tk.qty or qty,
            price=(tk.price or price) if otype.needs_price else None,
            filled_qty=0 if status != S.ACCEPTED else self.notice_cum.get((account_id, target), 0),
            status=status,
            ts=ts,
            org_no=tk.org_no,
            reason=reason,
        )
        return OrderUpdate(report)

    def _fill(
        self,
        account_id: int,
        odno: str,
        known: Known,
        symbol: str,
        side: Side,
        f: dict[str, str],
        ts: float,
    ) -> FillEvent | None:
        qty = wire.to_int(f.get("CNTG_QTY"))
        price = wire.to_int(f.get("CNTG_UNPR"))
        if qty <= 0 or price <= 0:
            return None
        ck = (account_id, odno)
        # The count is the order's own only if this process has followed it from its birth
        # (placed here) or from a report's total; otherwise (a restart) it starts mid-way.
        followed = ck in self.notice_cum or known.client_order_id is not None
        cum = self.notice_cum.get(ck, 0) + qty
        self.notice_cum[ck] = cum
        if cum <= self.reported_cum.get(ck, 0):
            # A report already carried this execution and the reconciler booked it from there.
            return None
        base = f"{odno}-{f.get('STCK_CNTG_HOUR', '')}-{qty}-{price}"
        fill_id, n = base, 1
        seen = self.fill_ids[account_id]
        while fill_id in seen:
            n += 1
            fill_id = f"{base}-{n}"
        seen.add(fill_id)
        fill = FillReport(
            broker_order_id=odno,
            fill_id=fill_id,
            symbol=symbol,
            side=side,
            qty=qty,
            price=price,
            ts=ts,
            client_order_id=known.client_order_id,
            cum_qty=cum if followed else None,
        )
        self.notice_fills[account_id].append(fill)
        return FillEvent(fill)
