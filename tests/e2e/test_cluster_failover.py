"""Cluster mode with real processes: fail-over after kill -9, and a partition from NATS.

Three ``hoga serve`` on one PostgreSQL database and one NATS (own prefix), 30 users on the
paper broker, orders posted to any server. Runs when PostgreSQL and NATS are reachable
(mandatory under CI=true). Lease TTL 6 s: a cut-off server fences itself after 4 s, a dead
one's users are free after 6 s.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.cluster_support import TcpProxy, delete_buckets, unique_prefix
from tests.e2e.cluster_support import (
    FINAL,
    WORKING,
    Load,
    cluster_env,
    lease_holders,
    make_users,
    orders_in_db,
    placements,
    shared_secrets,
    start_cluster,
    stop_all,
)
from tests.helpers import eventually_sync

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.timeout(900)]

TTL = 6.0
USERS = 30
# Seconds for a dead server's users to be taken over. The design figure is ttl + one round
# (about 7.5 s here, docs/scaling.md); the bound leaves room for this loaded 2-core machine,
# where three servers, the load and other suites share the cores.
BOUND = 3 * TTL


def _owned_by(nats_url: str, prefix: str, name: str) -> set[int]:
    return {
        int(k.removeprefix("user-"))
        for k, v in lease_holders(nats_url, prefix).items()
        if k.startswith("user-") and v == name
    }


def _all_owned(nats_url: str, prefix: str, users: int) -> bool:
    held = [k for k in lease_holders(nats_url, prefix) if k.startswith("user-")]
    return len(held) >= users + 1  # the traders and the admin


def _check_counts(pg_url: str, load: Load, data_dirs: list[Path]) -> dict[str, int]:
    """0 lost, 0 duplicated, 0 stuck; broker-side count == hoga count. Returns the counts."""
    db = orders_in_db(pg_url)
    lost = [c for c in load.acked if c not in db]
    stuck = {c: o["status"] for c, o in db.items() if o["status"] not in FINAL | WORKING}
    placed: dict[str, int] = {}
    for d in data_dirs:
        for rec in placements(d):
            placed[rec["c"]] = placed.get(rec["c"], 0) + 1
    duplicated = [c for c, n in placed.items() if n > 1]
    with_broker_id = {c for c, o in db.items() if o["broker_order_id"]}
    counts = {
        "acked": len(load.acked),
        "refused": load.refused,
        "not_answered": load.failed,
        "in_db": len(db),
        "lost": len(lost),
        "stuck": len(stuck),
        "duplicated": len(duplicated),
        "broker_side": len(placed),
        "hoga_with_broker_id": len(with_broker_id),
        "filled": sum(1 for o in db.values() if o["status"] == "FILLED"),
    }
    print("counts:", counts)
    if stuck:
        print("stuck:", dict(list(stuck.items())[:10]))
    assert not lost and not duplicated
    return counts


def test_kill_9_of_an_owner_mid_burst_moves_its_users_within_the_bound(
    tmp_path: Path, pg_url: str, nats_available: str
) -> None:
    prefix = unique_prefix()
    keys = shared_secrets()
    envs = [{**cluster_env(pg_url, nats_available, prefix, f"n{i}", TTL), **keys} for i in range(3)]
    servers = start_cluster(tmp_path, envs)
    data_dirs = [tmp_path / f"n{i}" / "var" for i in range(3)]
    try:
        ids, users = make_users([s.url for s in servers], USERS)
        eventually_sync(lambda: _all_owned(nats_available, prefix, USERS), 60, "every user owned")
        victim = 1
        theirs = _owned_by(nats_available, prefix, "n1") & set(ids)
        assert theirs, "the victim owns no trader: nothing to move"
        load = Load(servers, users)
        load.burst(per_user=2)  # warm: every owner is sending
        # The burst goes on in the background; the victim dies in the middle of it.
        burst = threading.Thread(target=load.burst, kwargs={"per_user": 6})
        burst.start()
        eventually_sync(lambda: len(load.acked) >= USERS * 4, 120, "the burst under way")
        servers[victim].proc.send_signal(signal.SIGKILL)
        killed = time.time()
        servers[victim].proc.wait(10)
        load.down.add(servers[victim].url)

        # The work has moved when a survivor holds the user's lease (it starts the user's
        # recovery right after taking it). Watched while the burst goes on.
        taken: dict[int, float] = {}

        def all_taken() -> bool:
            holders = lease_holders(nats_available, prefix)
            for u in theirs:
                if u not in taken and holders.get(f"user-{u}") in ("n0", "n2"):
                    taken[u] = time.time() - killed
            return set(taken) == theirs

        eventually_sync(all_taken, 60, "the dead server's users taken by the survivors")
        burst.join(180)
        load.burst(per_user=1)  # after the kill: every user has fresh work

        # And they are sending: the first order of each booked by a new owner after the kill.
        def first_sends() -> dict[int, float] | None:
            by_cid = {c: o["user_id"] for c, o in orders_in_db(pg_url).items()}
            first: dict[int, float] = {}
            for d in (data_dirs[0], data_dirs[2]):
                for rec in placements(d):
                    uid = by_cid.get(rec["c"])
                    if uid in theirs and rec["ts"] >= killed:
                        first[uid] = min(first.get(uid, rec["ts"]), rec["ts"])
            return first if set(first) == theirs else None

        sends = eventually_sync(first_sends, 60, "every moved user sending from its new owner")
        worst = max(taken.values())
        print(
            f"fail-over: {len(theirs)} users of the killed server taken over "
            f"{min(taken.values()):.2f}-{worst:.2f} s after kill -9 (lease ttl {TTL} s, "
            f"bound {BOUND} s); first sends by the new owners "
            f"{min(sends.values()) - killed:.2f}-{max(sends.values()) - killed:.2f} s after it"
        )
        assert worst <= BOUND

        def settled() -> bool:
            db = orders_in_db(pg_url)
            return all(o["status"] in FINAL | WORKING for o in db.values())

        eventually_sync(settled, 90, "every order final or working")
        counts = _check_counts(pg_url, load, data_dirs)
        assert counts["stuck"] == 0
        # In doubt at the kill: booked by the dead server's paper broker, answer never
        # recorded - the new owner reconciles them against its own (empty) paper book.
        assert counts["broker_side"] >= counts["hoga_with_broker_id"]
        assert counts["broker_side"] - counts["hoga_with_broker_id"] <= 8
    finally:
        stop_all(servers)
        asyncio.run(delete_buckets(prefix, nats_available))


def test_a_server_cut_off_from_nats_stops_sending_before_another_takes_its_users(
    tmp_path: Path, pg_url: str, nats_available: str
) -> None:
    prefix = unique_prefix()
    keys = shared_secrets()
    host, port = nats_available.removeprefix("nats://").split(":")
    proxy = TcpProxy(host, int(port))
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(10)
    urls = [nats_available, proxy.url, nats_available]
    envs = [{**cluster_env(pg_url, urls[i], prefix, f"n{i}", TTL), **keys} for i in range(3)]
    servers = start_cluster(tmp_path, envs)
    data_dirs = [tmp_path / f"n{i}" / "var" for i in range(3)]
    try:
        ids, users = make_users([s.url for s in servers], USERS)
        eventually_sync(lambda: _all_owned(nats_available, prefix, USERS), 60, "every user owned")
        theirs = _owned_by(nats_available, prefix, "n1") & set(ids)
        assert theirs
        load = Load(servers, users)
        stop = threading.Event()

        def keep_posting() -> None:
            while not stop.is_set():
                load.burst(per_user=1, threads=6)

        poster = threading.Thread(target=keep_posting)
        poster.start()
        eventually_sync(lambda: len(load.acked) >= USERS * 2, 120, "orders flowing")
        loop.call_soon_threadsafe(proxy.block)
        cut = time.time()

        def taken_over() -> bool:
            return not (_owned_by(nats_available, prefix, "n1") & theirs) and all(
                lease_holders(nats_available, prefix).get(f"user-{u}") for u in theirs
            )

        eventually_sync(taken_over, 60, "the cut-off server's users taken over")
        time.sleep(3 * TTL / 4)  # let the new owners send some of the waiting orders
        stop.set()
        poster.join(120)

        db = orders_in_db(pg_url)
        by_cid = {c: o["user_id"] for c, o in db.items()}
        victim_last: dict[int, float] = {}
        others_first: dict[int, float] = {}
        for rec in placements(data_dirs[1]):
            uid = by_cid.get(rec["c"])
            if uid in theirs:
                victim_last[uid] = max(victim_last.get(uid, 0.0), rec["ts"])
        for d in (data_dirs[0], data_dirs[2]):
            for rec in placements(d):
                uid = by_cid.get(rec["c"])
                if uid in theirs and rec["ts"] >= cut:
                    others_first[uid] = min(others_first.get(uid, rec["ts"]), rec["ts"])
        overlaps = [
            u for u in theirs if u in others_first and victim_last.get(u, 0.0) >= others_first[u]
        ]
        last = max((t for t in victim_last.values()), default=cut) - cut
        first = min(others_first.values(), default=float("nan")) - cut
        print(
            f"partition: cut-off server's last send {last:.2f} s after the cut, the first send "
            f"by a new owner {first:.2f} s after it; users with overlapping owners: {len(overlaps)}"
        )
        assert others_first, "nobody took over the cut-off server's users"
        assert not overlaps
        assert last < TTL * 2 / 3 + 1.0
    finally:
        loop.call_soon_threadsafe(proxy.unblock)
        stop_all(servers)
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        asyncio.run(delete_buckets(prefix, nats_available))
