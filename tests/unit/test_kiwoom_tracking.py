"""Order chains: type-00 frames and report rows as hoga's events and reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from hoga.brokers.base import FillEvent, OrderUpdate, PlaceRequest
from hoga.brokers.kiwoom.tracking import OrderTracker, ReportRow
from hoga.brokers.kiwoom.wire import WireError
from hoga.domain.clock import KST, ManualClock
from hoga.domain.orders import OrderStatus, OrderType, Side

DAY = "20261126"


@pytest.fixture
def tracker() -> OrderTracker:
    return OrderTracker(7, ManualClock(datetime(2026, 11, 26, 10, 0, tzinfo=KST)))


def frame(ord_no: str, state: str, **fids: Any) -> dict[str, str]:
    """A type-00 frame as the guide shows it (every value a string)."""
    v = {
        "9201": "5012345601",
        "9203": ord_no,
        "9001": "A005930",
        "913": state,
        "900": "10",
        "901": "70000",
        "902": "10",
        "904": "0000000",
        "905": "+매수",
        "906": "보통",
        "907": "2",
        "908": "100001",
        "911": "",
        "914": "",
        "915": "",
    }
    v.update({k.lstrip("f"): str(x) for k, x in fids.items()})
    return v


def buy(qty: int = 10, price: int | None = 70_000, cid: str = "c-1") -> PlaceRequest:
    kind = OrderType.LIMIT if price else OrderType.MARKET
    return PlaceRequest(cid, "005930", Side.BUY, kind, qty, price)


def test_accept_partial_fills_and_dedupe(tracker: OrderTracker) -> None:
    chain = tracker.placed(tracker.expect(buy()), "0000024")
    assert chain.order_id == f"{DAY}-0000024"
    (accepted,) = tracker.on_order_frame(frame("0000024", "접수"))
    assert isinstance(accepted, OrderUpdate)
    assert accepted.report.status == OrderStatus.ACCEPTED
    assert accepted.report.client_order_id == "c-1"

    (f1,) = tracker.on_order_frame(
        frame("0000024", "체결", f911="4", f915="4", f914="+70000", f902="6")
    )
    assert isinstance(f1, FillEvent)
    assert (f1.fill.qty, f1.fill.price, f1.fill.fill_id) == (4, 70_000, f"{DAY}-0000024-4")
    assert f1.fill.broker_order_id == f"{DAY}-0000024" and f1.fill.client_order_id == "c-1"
    # The same execution delivered twice is one fill.
    assert tracker.on_order_frame(frame("0000024", "체결", f911="4", f915="4", f914="70000")) == []
    # Without unit FIDs the quantity is the growth of the cumulative one (FID 911).
    (f2,) = tracker.on_order_frame(frame("0000024", "체결", f911="10", f910="-69900"))
    assert isinstance(f2, FillEvent)
    assert (f2.fill.qty, f2.fill.price) == (6, 69_900)
    assert chain.status == OrderStatus.FILLED and chain.filled == 10


def test_modify_moves_the_order_to_a_new_number_and_events_still_name_the_root(
    tracker: OrderTracker,
) -> None:
    chain = tracker.placed(tracker.expect(buy()), "0000139")
    tracker.derived(chain, "0000140", modify=True, price=70_500)
    assert chain.head == "0000140"
    # Frames of the modify order: accepted, confirmed, then an execution on the new number.
    m = {"f904": "0000139", "f905": "매수정정", "f901": "70500"}
    assert tracker.on_order_frame(frame("0000140", "접수", **m)) == []
    assert tracker.on_order_frame(frame("0000140", "확인", **m)) == []
    (fill,) = tracker.on_order_frame(
        frame("0000140", "체결", f911="10", f915="10", f914="70500", **m)
    )
    assert isinstance(fill, FillEvent)
    assert fill.fill.broker_order_id == f"{DAY}-0000139"
    assert fill.fill.fill_id == f"{DAY}-0000140-10"
    assert chain.status == OrderStatus.FILLED and chain.price == 70_500


def test_modify_seen_only_on_the_stream_links_through_fid_904(tracker: OrderTracker) -> None:
    tracker.placed(tracker.expect(buy()), "0000139")
    m = {"f904": "0000139", "f905": "매수정정", "f901": "70500"}
    tracker.on_order_frame(frame("0000140", "확인", **m))
    chain = tracker.chain(DAY, "0000139")
    assert chain is not None and chain.head == "0000140"
    (cancelled,) = tracker.on_order_frame(
        frame("0000141", "확인", f904="0000140", f905="매수취소", f900="10")
    )
    assert isinstance(cancelled, OrderUpdate)
    assert cancelled.report.status == OrderStatus.CANCELLED
    assert cancelled.report.broker_order_id == f"{DAY}-0000139"


def test_partial_cancel_is_not_the_end_of_the_order(tracker: OrderTracker) -> None:
    tracker.placed(tracker.expect(buy()), "0000001")
    assert (
        tracker.on_order_frame(frame("0000002", "확인", f904="0000001", f905="매수취소", f900="4"))
        == []
    )
    (done,) = tracker.on_order_frame(
        frame("0000003", "확인", f904="0000001", f905="매수취소", f900="6")
    )
    assert isinstance(done, OrderUpdate) and done.report.status == OrderStatus.CANCELLED


def test_reject_carries_the_reason(tracker: OrderTracker) -> None:
    tracker.placed(tracker.expect(buy()), "0000005")
    (rej,) = tracker.on_order_frame(frame("0000005", "거부", f919="주문가능금액 부족"))
    assert isinstance(rej, OrderUpdate)
    assert rej.report.status == OrderStatus.REJECTED and rej.report.reason == "주문가능금액 부족"


def test_unanswered_place_is_claimed_by_the_one_matching_acceptance(
    tracker: OrderTracker,
) -> None:
    pending = tracker.expect(buy(cid="lost-1"))
    assert tracker.unanswered(pending) == []  # nothing seen yet
    (accepted,) = tracker.on_order_frame(frame("0000077", "접수"))
    assert isinstance(accepted, OrderUpdate)
    assert accepted.report.client_order_id == "lost-1"


def test_an_acceptance_seen_before_the_timeout_is_replayed_with_the_client_id(
    tracker: OrderTracker,
) -> None:
    pending = tracker.expect(buy(cid="slow-1"))
    (early,) = tracker.on_order_frame(frame("0000078", "접수"))
    assert isinstance(early, OrderUpdate) and early.report.client_order_id is None
    tracker.on_order_frame(frame("0000078", "체결", f911="3", f915="3", f914="70000"))
    replay = tracker.unanswered(pending)
    assert [type(e).__name__ for e in replay] == ["OrderUpdate", "FillEvent"]
    assert all(
        (e.report if isinstance(e, OrderUpdate) else e.fill).client_order_id == "slow-1"
        for e in replay
    )


def test_two_identical_unanswered_orders_are_not_guessed(tracker: OrderTracker) -> None:
    tracker.unanswered(tracker.expect(buy(cid="a")))
    tracker.unanswered(tracker.expect(buy(cid="b")))
    (accepted,) = tracker.on_order_frame(frame("0000079", "접수"))
    assert isinstance(accepted, OrderUpdate) and accepted.report.client_order_id is None


def test_malformed_frames_are_ignored(tracker: OrderTracker) -> None:
    assert tracker.on_order_frame(frame("0000001", "접수", f9001="??")) == []
    assert tracker.on_order_frame({"913": "접수"}) == []


def row(ord_no: str, **kw: Any) -> dict[str, str]:
    r = {
        "ord_no": ord_no,
        "stk_cd": "005930",
        "io_tp_nm": "+매수",
        "trde_tp": "보통",
        "ord_qty": "0000000010",
        "ord_pric": "0000070000",
        "oso_qty": "0000000010",
        "orig_ord_no": "0000000",
        "cntr_qty": "0000000000",
        "cntr_pric": "",
        "tm": "100001",
    }
    r.update({k: str(v) for k, v in kw.items()})
    return r


def parse(*rows: dict[str, str]) -> list[ReportRow]:
    return [ReportRow.parse(r, DAY, 0.0) for r in rows]


def test_reports_fold_a_modify_chain_and_fill_what_the_stream_missed(
    tracker: OrderTracker,
) -> None:
    chain = tracker.placed(tracker.expect(buy()), "0000011")
    # The stream delivered the first 4 shares of the original number.
    tracker.on_order_frame(frame("0000011", "체결", f911="4", f915="4", f914="70000"))
    rows = parse(
        row("0000011", oso_qty="0", cntr_qty="4", cntr_pric="70000"),
        row(
            "0000012",
            orig_ord_no="0000011",
            io_tp_nm="매수정정",
            ord_qty="6",
            ord_pric="70500",
            oso_qty="1",
            cntr_qty="5",
            cntr_pric="70500",
        ),
    )
    reports, fills = tracker.sync(DAY, rows)
    (rep,) = reports
    assert rep.broker_order_id == f"{DAY}-0000011" and rep.client_order_id == "c-1"
    assert (rep.qty, rep.filled_qty, rep.status, rep.price) == (
        10,
        9,
        OrderStatus.PARTIALLY_FILLED,
        70_500,
    )
    assert sorted((f.fill_id, f.qty, f.price) for f in fills) == [
        (f"{DAY}-0000011-4", 4, 70_000),
        (f"{DAY}-0000012-5~avg", 5, 70_500),  # from an average: marked,
    ]
    assert chain.head == "0000012"
    # A late live notice of an execution the report already covered is not counted again.
    assert (
        tracker.on_order_frame(
            frame(
                "0000012", "체결", f904="0000011", f905="매수정정", f911="5", f915="5", f914="70500"
            )
        )
        == []
    )
    # Sync is idempotent.
    again, fills2 = tracker.sync(DAY, rows)
    assert again == reports and fills2 == fills


def test_reports_after_a_restart_rebuild_chains_from_orig_numbers() -> None:
    fresh = OrderTracker(7, ManualClock(datetime(2026, 11, 26, 11, 0, tzinfo=KST)))
    rows = parse(
        row("0000021", oso_qty="0", cntr_qty="10", cntr_pric="69800"),
        row("0000031", orig_ord_no="0000030", io_tp_nm="-매도", ord_qty="5", oso_qty="5"),
        row(
            "0000040",
            trde_tp="시장가",
            ord_pric="0",
            oso_qty="0",
            cntr_qty="3",
            cntr_pric="70100",
            ord_qty="3",
        ),
    )
    reports, fills = fresh.sync(DAY, rows)
    by_id = {r.broker_order_id: r for r in reports}
    assert by_id[f"{DAY}-0000021"].status == OrderStatus.FILLED
    # A modified order whose original is in neither list is reported under the original.
    moved = by_id[f"{DAY}-0000030"]
    assert moved.status == OrderStatus.ACCEPTED and moved.side == Side.SELL
    market = by_id[f"{DAY}-0000040"]
    assert market.type == OrderType.MARKET and market.price is None
    assert {f.fill_id for f in fills} == {f"{DAY}-0000021-10~avg", f"{DAY}-0000040-3~avg"}


def test_closed_with_a_remainder_is_cancelled(tracker: OrderTracker) -> None:
    tracker.placed(tracker.expect(buy()), "0000050")
    (rep,), _ = tracker.sync(
        DAY, parse(row("0000050", oso_qty="0", cntr_qty="3", cntr_pric="70000"))
    )
    assert rep.status == OrderStatus.CANCELLED and rep.filled_qty == 3


def test_report_rows_without_an_order_number_or_side_are_errors() -> None:
    with pytest.raises(WireError):
        ReportRow.parse(row(""), DAY, 0.0)
    with pytest.raises(WireError):
        ReportRow.parse(row("0000001", io_tp_nm="??"), DAY, 0.0)
    with pytest.raises(WireError):
        ReportRow.parse(row("0000001", ord_qty="ten"), DAY, 0.0)


def test_an_acknowledged_cancel_no_longer_listed_is_reported_cancelled(
    tracker: OrderTracker,
) -> None:
    kept = tracker.placed(tracker.expect(buy(cid="keep")), "0000060")
    gone = tracker.placed(tracker.expect(buy(cid="gone")), "0000061")
    tracker.derived(gone, "0000062", modify=False, price=None)
    reports, _ = tracker.sync(DAY, parse(row("0000060")))
    by_id = {r.client_order_id: r.status for r in reports}
    assert by_id == {"keep": OrderStatus.ACCEPTED, "gone": OrderStatus.CANCELLED}
    assert kept.status == OrderStatus.ACCEPTED
    # An order merely missing from the list, with no cancel of ours, is not guessed at.
    tracker.placed(tracker.expect(buy(cid="quiet")), "0000063")
    reports, _ = tracker.sync(DAY, parse(row("0000060")))
    assert "quiet" not in {r.client_order_id for r in reports}


def test_after_a_restart_the_last_notice_carries_the_whole_cumulative_position(
    tracker: OrderTracker,
) -> None:
    """A fresh tracker (hoga restarted) hears only the last execution of an order that
    executed 100 of 123 shares while it was down: the fill names where it leaves the order
    (cumulative 123 shares, FID 903's amount), and the chain is FILLED - not 23 shares and
    CANCELLED once the reports say the order is closed."""
    amount = 100 * 69_900 + 23 * 70_000
    (fill,) = tracker.on_order_frame(
        frame(
            "0000031",
            "체결",
            f900="123",
            f902="0",
            f903=str(amount),
            f911="123",
            f915="23",
            f914="+70000",
        )
    )
    assert isinstance(fill, FillEvent)
    assert (fill.fill.qty, fill.fill.cum_qty, fill.fill.cum_amount) == (23, 123, amount)
    reports, fills = tracker.sync(
        DAY, parse(row("0000031", ord_qty="123", oso_qty="0", cntr_qty="123", cntr_pric="69916"))
    )
    (rep,) = reports
    assert (rep.status, rep.filled_qty, rep.filled_amount) == (OrderStatus.FILLED, 123, amount)
    assert [f.fill_id for f in fills] == [f"{DAY}-0000031-123"]


def test_a_report_residual_carries_its_cumulative_position_without_an_amount(
    tracker: OrderTracker,
) -> None:
    reports, fills = tracker.sync(
        DAY, parse(row("0000032", ord_qty="10", oso_qty="0", cntr_qty="10", cntr_pric="70000"))
    )
    (f,) = fills
    assert (f.qty, f.cum_qty, f.cum_amount) == (10, 10, None)  # ka10076's price is an average
    assert reports[0].filled_amount is None and reports[0].avg_price == 70_000
