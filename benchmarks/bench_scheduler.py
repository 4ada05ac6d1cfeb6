"""Session-limited gateway benchmark: the seed's scheduling policy against hoga's.

A discrete-event simulation on a simulated clock drives the same policy objects the live
dispatcher uses (``hoga.execution.scheduling``): 10 users (2 premium), Poisson arrivals for
30 simulated minutes at 60 and 300 orders/min, a gateway with one session, a 3 s switch cost
and 5 orders/s. 5% of orders are URGENT (stop-losses). Prints orders served per minute,
p50/p95/max wait per priority class, switches per minute and the backlog left at the end.

    .venv/bin/python -m benchmarks.bench_scheduler [--minutes 30] [--seed 1] [--urgent-share 0.05] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import dataclass, field

from tests.dispatch_support import place_item

from hoga.domain.orders import Priority
from hoga.execution.queue import OrderQueue
from hoga.execution.scheduling import (
    Act,
    HogaSessionPolicy,
    SeedSessionPolicy,
    SessionPolicy,
    SessionState,
)

USERS = 10
PREMIUM = {1, 2}
SWITCH_COST = 3.0
RATE = 5.0
URGENT_SHARE = 0.05


@dataclass
class Result:
    policy: str
    load_per_min: float
    minutes: float
    offered: int = 0
    served: int = 0
    switches: int = 0
    waits: dict[str, list[float]] = field(
        default_factory=lambda: {"urgent": [], "vip": [], "normal": []}
    )

    def pct(self, cls: str, p: float) -> float:
        xs = sorted(self.waits[cls])
        if not xs:
            return math.nan
        return xs[min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1)]

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {
            "policy": self.policy,
            "load_per_min": self.load_per_min,
            "offered": self.offered,
            "served": self.served,
            "served_per_min": round(self.served / self.minutes, 1),
            "served_share": round(self.served / self.offered, 4) if self.offered else 0,
            "switches_per_min": round(self.switches / self.minutes, 2),
            "backlog_at_end": self.offered - self.served,
        }
        for cls in ("urgent", "vip", "normal"):
            xs = self.waits[cls]
            out[cls] = {
                "n": len(xs),
                "p50": round(self.pct(cls, 50), 2),
                "p95": round(self.pct(cls, 95), 2),
                "max": round(max(xs), 2) if xs else math.nan,
            }
        return out


def arrivals(
    rate_per_min: float, minutes: float, seed: int, urgent_share: float = URGENT_SHARE
) -> list[tuple[float, int, Priority]]:
    rng = random.Random(seed)
    lam = rate_per_min / 60.0
    t = 0.0
    out = []
    while True:
        t += rng.expovariate(lam)
        if t >= minutes * 60:
            return out
        user = rng.randint(1, USERS)
        if rng.random() < urgent_share:
            pr = Priority.URGENT
        elif user in PREMIUM:
            pr = Priority.VIP
        else:
            pr = Priority.NORMAL
        out.append((t, user, pr))


def simulate(
    policy: SessionPolicy, arr: list[tuple[float, int, Priority]], minutes: float, load: float
) -> Result:
    end = minutes * 60
    res = Result(policy.name, load, minutes, offered=len(arr))
    s = SessionState()
    t, i, n = 0.0, 0, len(arr)
    while True:
        while i < n and arr[i][0] <= t:
            at, user, pr = arr[i]
            # Arrival i is order i + 1 of the user's own account (one account per user here).
            policy.push(place_item(i + 1, pr, at, account=user, gateway="sim"))
            i += 1
        if t >= end:
            break
        d = policy.decide(t, s)
        if d.act == Act.SEND:
            assert d.account is not None
            item = policy.take(d.account)
            if item is not None:
                res.served += 1
                res.waits[item.priority.name.lower()].append(t - item.enqueued_at)
            s.next_send_at = t + 1.0 / RATE
        elif d.act == Act.SWITCH:
            res.switches += 1
            t += SWITCH_COST
            s.active, s.active_since, s.next_send_at = d.account, t, t
        elif d.act == Act.PREPARE:
            s.standby, s.standby_ready_at = d.account, t + SWITCH_COST
        elif d.act == Act.ACTIVATE:
            res.switches += 1
            s.active, s.active_since = s.standby, t
            s.next_send_at = max(s.next_send_at, t)
            s.standby = s.standby_ready_at = None
        else:
            nxt = arr[i][0] if i < n else math.inf
            t = min(d.until, nxt, end)
    return res


def run(minutes: float, seed: int, urgent_share: float = URGENT_SHARE) -> list[dict[str, object]]:
    rows = []
    for load in (60.0, 300.0):
        arr = arrivals(load, minutes, seed, urgent_share)
        seed_res = simulate(SeedSessionPolicy(), arr, minutes, load)
        hoga_res = simulate(
            HogaSessionPolicy(OrderQueue(max_wait=30.0), "sim", time_slice=30.0, preload=True),
            arr,
            minutes,
            load,
        )
        rows += [seed_res.summary(), hoga_res.summary()]
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--urgent-share",
        type=float,
        default=URGENT_SHARE,
        help="share of orders that are URGENT (stop-losses, cancels)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = run(args.minutes, args.seed, args.urgent_share)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"session-limited gateway: switch {SWITCH_COST:g} s, {RATE:g} orders/s, {USERS} users "
        f"({len(PREMIUM)} premium), {args.urgent_share:.0%} urgent, {args.minutes:g} simulated min, seed {args.seed}"
    )
    hdr = f"{'load':>5} {'policy':>6} {'offered':>7} {'served/min':>10} {'served%':>8} {'sw/min':>7} {'backlog':>7}"
    for cls in ("urgent", "vip", "normal"):
        hdr += f" | {cls + ' p50/p95/max (s)':>26}"
    print(hdr)
    for r in rows:
        line = (
            f"{r['load_per_min']:>5.0f} {r['policy']:>6} {r['offered']:>7} {r['served_per_min']:>10} "
            f"{float(r['served_share']) * 100:>7.1f}% {r['switches_per_min']:>7} {r['backlog_at_end']:>7}"
        )
        for cls in ("urgent", "vip", "normal"):
            c = r[cls]
            assert isinstance(c, dict)
            line += f" | {c['p50']:>8} {c['p95']:>8} {c['max']:>8}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
