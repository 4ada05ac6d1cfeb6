"""Run python-kis (a public KIS client, PyPI ``python-kis`` 2.x) against the KIS fake with
nothing changed but the host names, through its ordinary domestic flows, and report per flow.

    .venv-pykis/bin/python scripts/check_python_kis.py      # make check-python-kis

python-kis is not a hoga dependency: ``make check-python-kis`` builds a scratch venv with it.
The fake runs in a thread of this process (its own event loop); python-kis is synchronous.
Exit status 0 when every flow passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from hoga.domain.clock import KST
from hoga.fakes.kis import KisFake, KisFakeAccount

ACCOUNT = "50123456-01"
HTS = "pykisuser"
KEY = "PS" + "k" * 34  # python-kis checks the lengths: 36 and 180
SECRET = "s" * 180


@contextlib.contextmanager
def fake_in_thread() -> Iterator[KisFake]:
    fake = KisFake(
        env="real",
        accounts=[KisFakeAccount(ACCOUNT, KEY, SECRET, hts_id=HTS, cash=100_000_000)],
        drive=True,
        ticks_per_second=200,
    )
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        await fake.start()
        started.set()
        await stop.wait()
        await fake.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(60):
        raise RuntimeError("the KIS fake did not start")
    try:
        yield fake
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def pykis_on(fake: KisFake) -> Any:
    """A PyKis whose real-domain hosts point at the fake - the only change made to it."""
    import pykis.client.websocket as ws_module
    import pykis.kis as kis_module
    from pykis import PyKis

    kis_module.REAL_DOMAIN = fake.base_url  # type: ignore[attr-defined]
    ws_module.WEBSOCKET_REAL_DOMAIN = fake.ws_url  # type: ignore[attr-defined]
    return PyKis(id=HTS, account=ACCOUNT, appkey=KEY, secretkey=SECRET, keep_token=False)


def wait_for(check: Callable[[], bool], within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def run_flows(fake: KisFake) -> dict[str, str]:
    """Each flow: "ok", or the exception it raised (first line)."""
    results: dict[str, str] = {}
    state: dict[str, Any] = {}

    def flow(name: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
            results[name] = "ok"
        except Exception as e:  # report and go on with the next flow
            results[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            if "-v" in sys.argv:
                traceback.print_exc()

    kis = pykis_on(fake)
    account = kis.account()
    stock = kis.stock("005930")

    def token() -> None:
        assert kis.token is not None

    def balance() -> None:
        b = account.balance()
        assert b.deposits["KRW"].amount > 0

    def search() -> None:
        info = kis.stock("095340").info
        assert info.name == "ISC", info.name

    def quote() -> None:
        q = stock.quote()
        assert q.price > 0 and q.high >= q.low

    def orderbook() -> None:
        ob = stock.orderbook()
        assert len(ob.asks) == 10 and len(ob.bids) == 10

    def buyable() -> None:
        amount = stock.orderable_amount(price=70_000)
        assert amount.qty > 0

    def limit_buy() -> None:
        q = stock.quote()
        state["limit"] = stock.buy(price=int(q.price) * 9 // 10 // 100 * 100, qty=1)

    def market_buy() -> None:
        state["market"] = stock.buy(qty=1)

    def pending() -> None:
        orders = account.pending_orders()
        assert any(o.number == state["limit"].number for o in orders.orders), orders.orders

    def modify() -> None:
        state["limit"] = state["limit"].modify(
            price=int(stock.quote().price) * 85 // 100 // 100 * 100
        )

    def cancel() -> None:
        state["limit"].cancel()

    def sell() -> None:
        assert wait_for(lambda: account.balance().stock("005930") is not None)
        stock.sell(qty=1)

    def daily_orders() -> None:
        today = datetime.now(KST).date()
        orders = account.daily_orders(start=today, end=today)
        assert len(orders.orders) >= 2

    def realtime_price() -> None:
        got: list[Any] = []
        ticket = stock.on("price", lambda sender, e: got.append(e.response))
        try:
            assert wait_for(lambda: bool(got)), "no realtime price"
            assert got[0].price > 0
        finally:
            ticket.unsubscribe()

    def realtime_orderbook() -> None:
        got: list[Any] = []
        ticket = stock.on("orderbook", lambda sender, e: got.append(e.response))
        try:
            assert wait_for(lambda: bool(got)), "no realtime order book"
            assert len(got[0].asks) == 10
        finally:
            ticket.unsubscribe()

    for name, fn in (
        ("token", token),
        ("balance", balance),
        ("stock search", search),
        ("quote", quote),
        ("order book", orderbook),
        ("buyable amount", buyable),
        ("limit buy", limit_buy),
        ("market buy", market_buy),
        ("pending orders", pending),
        ("modify", modify),
        ("cancel", cancel),
        ("sell", sell),
        ("daily orders", daily_orders),
        ("realtime price", realtime_price),
        ("realtime order book", realtime_orderbook),
    ):
        flow(name, fn)
    with contextlib.suppress(Exception):
        kis.websocket.disconnect()
    return results


def main() -> int:
    try:
        import pykis  # noqa: F401
    except ImportError:
        print("python-kis is not installed here (make check-python-kis builds a venv with it)")
        return 2
    with fake_in_thread() as fake:
        results = run_flows(fake)
    width = max(len(k) for k in results)
    for name, outcome in results.items():
        print(f"{name:<{width}}  {outcome}")
    failed = [k for k, v in results.items() if v != "ok"]
    print(f"\n{len(results) - len(failed)}/{len(results)} flows passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
