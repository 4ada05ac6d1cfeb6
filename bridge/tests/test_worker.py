"""The worker and the fake control in one process: login, pacing, overflow retries, paging,
orders with partial fills, modify and cancel, refusals."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from hoga_bridge import control as c
from hoga_bridge import fake_control
from hoga_bridge.fake_control import FakeControl, FakeSettings
from hoga_bridge.worker import Worker

ACC = "5012345611"


@pytest.fixture(autouse=True)
def _fresh_process() -> Any:
    """The fake allows one login per process; each test stands for a new process."""
    fake_control._process_logged_in.clear()
    yield
    fake_control._process_logged_in.clear()


def settings(tmp_path: Path, **kw: Any) -> FakeSettings:
    values: dict[str, Any] = {
        "state_dir": str(tmp_path),
        "login_delay": 0.05,
        "users": {"kim": [ACC]},
        "fill_delay": 0.01,
        "answer_delay": 0.005,
    }
    values.update(kw)
    return FakeSettings(**values)


class Driver:
    """Runs a Worker's loop until the answer to a command (or an event) appears."""

    def __init__(self, s: FakeSettings, **kw: Any) -> None:
        self.out = io.StringIO()
        self.worker = Worker(lambda user: FakeControl(user, s), self.out, **kw)
        self.seen: list[dict[str, Any]] = []
        self._read = 0
        self._id = 0

    def _drain(self) -> None:
        text = self.out.getvalue()
        for line in text[self._read :].splitlines():
            self.seen.append(json.loads(line))
        self._read = len(text)

    def run_until(self, pred: Any, within: float = 10.0) -> dict[str, Any]:
        end = time.monotonic() + within
        while time.monotonic() < end:
            self.worker.step(time.monotonic())
            if self.worker.control is not None:
                self.worker.control.pump(0.005)
            self._drain()
            for msg in self.seen:
                if pred(msg):
                    return msg
        raise AssertionError(f"nothing matched within {within}s; seen {self.seen[-5:]}")

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        self._id += 1
        n = self._id
        self.worker.submit({"id": n, "op": op, **args})
        return self.run_until(lambda m: m.get("id") == n)

    def send(self, op: str, **args: Any) -> int:
        self._id += 1
        self.worker.submit({"id": self._id, "op": op, **args})
        return self._id


def order(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"acc": ACC, "order_type": c.BUY, "code": "005930", "qty": 9}
    args.update({"price": 0, "hoga": c.MARKET, "orig": ""})
    args.update(kw)
    return args


def test_login_reports_accounts_and_a_second_login_in_the_process_is_refused(
    tmp_path: Path,
) -> None:
    d = Driver(settings(tmp_path))
    ok = d.call("login", user="kim")
    assert ok["ok"] and ok["accounts"] == [ACC]
    # The control cannot log out: another CommConnect in this process fails.
    other = FakeControl("lee", settings(tmp_path))
    assert other.CommConnect() != c.OP_ERR_NONE


def test_a_login_failure_code_is_reported_and_ends_the_worker(tmp_path: Path) -> None:
    d = Driver(settings(tmp_path, login_fail={"kim": c.OP_ERR_CONNECT}))
    bad = d.call("login", user="kim")
    assert (bad["ok"], bad["kind"], bad["code"]) == (False, "login_failed", -101)
    assert not d.worker.running


def test_commands_before_login_are_refused(tmp_path: Path) -> None:
    d = Driver(settings(tmp_path))
    bad = d.call("order", **order())
    assert bad["kind"] == "not_logged_in"


def test_the_fake_refuses_over_its_limits_with_the_overflow_codes(tmp_path: Path) -> None:
    s = settings(tmp_path)
    ctl = FakeControl("kim", s)
    events: list[int] = []

    class H:
        def OnEventConnect(self, err: int) -> None:
            events.append(err)

        def __getattr__(self, name: str) -> Any:
            return lambda *a: None

    ctl.set_handler(H())  # type: ignore[arg-type]
    ctl.CommConnect()
    while not events:
        ctl.pump(0.01)
    codes = [ctl.CommRqData(f"r{i}", "opt10001", 0, "1000") for i in range(6)]
    assert codes == [0] * 5 + [c.OP_ERR_SISE_OVERFLOW]
    sent = [ctl.SendOrder(f"o{i}", "1000", ACC, 1, "005930", 1, 0, "03", "") for i in range(6)]
    assert sent == [0] * 5 + [c.OP_ERR_ORD_OVERFLOW]
    assert ctl.SendOrder("x", "1000", "9999999999", 1, "005930", 1, 0, "03", "") == -302


def test_overflow_answers_are_retried_never_dropped(tmp_path: Path) -> None:
    """The worker's own pacer is set too loose on purpose: the control answers −308, the
    worker backs off and sends again, and every order ends with an order number."""
    d = Driver(settings(tmp_path), order_windows=[(100, 1.0)], overflow_deadline=8.0)
    d.call("login", user="kim")
    ids = [d.send("order", **order(qty=1)) for _ in range(8)]
    answers = [d.run_until(lambda m, n=n: m.get("id") == n) for n in ids]
    assert all(a["ok"] and a["order_no"] for a in answers), answers
    assert len({a["order_no"] for a in answers}) == 8


def test_overflow_past_the_deadline_is_not_processed_with_retry_after(tmp_path: Path) -> None:
    d = Driver(settings(tmp_path, order_rate=1), order_windows=[(100, 1.0)], overflow_deadline=0.3)
    d.call("login", user="kim")
    first, second = d.send("order", **order(qty=1)), d.send("order", **order(qty=1))
    assert d.run_until(lambda m: m.get("id") == first)["ok"]
    late = d.run_until(lambda m: m.get("id") == second)
    assert (late["ok"], late["kind"], late["code"]) == (False, "not_processed", -308)
    assert late["retry_after"] > 0


def test_market_order_fills_in_pieces_with_chejan_fids(tmp_path: Path) -> None:
    d = Driver(settings(tmp_path))
    d.call("login", user="kim")
    ack = d.call("order", **order(qty=9))
    no = ack["order_no"]
    last = d.run_until(
        lambda m: m.get("event") == "chejan" and m["fids"].get("911") == "9" and m["gubun"] == "0"
    )
    fills = [m for m in d.seen if m.get("event") == "chejan" and m["fids"].get("913") == "체결"]
    assert [f["fids"]["915"] for f in fills] == ["3", "3", "3"]  # partial fills
    f = last["fids"]
    assert (f["9203"], f["9201"], f["9001"], f["902"], f["907"]) == (no, ACC, "A005930", "0", "2")
    assert int(f["903"]) == sum(int(x["fids"]["915"]) * int(x["fids"]["914"]) for x in fills)
    assert any(m.get("event") == "chejan" and m["gubun"] == "1" for m in d.seen)


def test_modify_then_cancel_get_new_numbers_and_refusals_carry_the_message(
    tmp_path: Path,
) -> None:
    d = Driver(settings(tmp_path))
    d.call("login", user="kim")
    low = 1000  # far below the fake market: rests
    placed = d.call("order", **order(qty=5, hoga=c.LIMIT, price=low))["order_no"]
    moved = d.call(
        "order", **order(order_type=c.MODIFY_BUY, qty=5, hoga=c.LIMIT, price=low + 5, orig=placed)
    )["order_no"]
    assert moved != placed
    cancel = d.call("order", **order(order_type=c.CANCEL_BUY, qty=0, orig=moved))
    assert cancel["ok"] and cancel["order_no"] not in (placed, moved)
    again = d.call("order", **order(order_type=c.CANCEL_BUY, qty=0, orig=moved))
    assert again["kind"] == "rejected" and "800300" in again["message"]
    off_tick = d.call("order", **order(hoga=c.LIMIT, price=5003))
    assert off_tick["kind"] == "rejected" and "호가단위" in off_tick["message"]
    rows = d.call(
        "tr",
        tr="opt10075",
        inputs={"계좌번호": ACC, "체결구분": "0"},
        multi=["주문번호", "원주문번호", "주문구분", "미체결수량"],
        pages=5,
    )["rows"]
    by_no = {r["주문번호"]: r for r in rows}
    assert by_no[moved]["원주문번호"] == placed and by_no[moved]["미체결수량"] == "0"
    assert by_no[cancel["order_no"]]["주문구분"] == "매수취소"


def test_tr_continuation_follows_prev_next(tmp_path: Path) -> None:
    d = Driver(settings(tmp_path, page_size=2))
    d.call("login", user="kim")
    for _ in range(5):
        d.call("order", **order(qty=1, hoga=c.LIMIT, price=1000))
    one = d.call("tr", tr="opt10075", inputs={"계좌번호": ACC}, multi=["주문번호"], pages=1)
    assert len(one["rows"]) == 2 and one["more"]
    every = d.call("tr", tr="opt10075", inputs={"계좌번호": ACC}, multi=["주문번호"], pages=9)
    assert len(every["rows"]) == 5 and not every["more"]


def test_a_new_process_of_the_same_user_sees_earlier_orders(tmp_path: Path) -> None:
    s = settings(tmp_path)
    d = Driver(s)
    d.call("login", user="kim")
    no = d.call("order", **order(qty=2, hoga=c.LIMIT, price=1000))["order_no"]
    fake_control._process_logged_in.clear()  # a new process
    d2 = Driver(s)
    d2.call("login", user="kim")
    rows = d2.call("tr", tr="opt10075", inputs={"계좌번호": ACC}, multi=["주문번호"], pages=9)
    assert [r["주문번호"] for r in rows["rows"]] == [no]


def test_a_dropped_connection_is_reported_and_ends_the_worker(tmp_path: Path) -> None:
    d = Driver(settings(tmp_path), allow_faults=True)
    d.call("login", user="kim")
    d.call("fault", name="disconnect")
    d.run_until(lambda m: m.get("event") == "disconnected", within=5.0)
    assert not d.worker.running
