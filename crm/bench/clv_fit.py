"""Time the CLV model's first fit (BG/NBD then Gamma-Gamma) on ``crm bench reports``' generated history, in memory.

``python -m crm.bench.clv_fit [--customers 100000] [--purchases 1000000] [--profile N]``: the same purchase plan
and spend as ``crm bench reports`` (its ``plan``, ``SPEND``, seed), summarised per customer as the report
summarises the ``value_days`` aggregate, then the model library's import and both ``fit_converging`` timed in
CPU seconds (the figure a shared machine's load does not move); ``--profile N`` prints cProfile's N dearest calls.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time
from datetime import timedelta

from crm.bench.reports import CLV_AS_OF, FIRST_DAY, SPEND, plan
from shared import churn, clv


def history(customers: int, purchases: int, seed: int = 15, *, as_of=CLV_AS_OF) -> dict[str, clv.Spending]:
    """Every customer's summary as of ``CLV_AS_OF`` under the bench's plan."""
    rng = random.Random(seed)
    events = plan(customers, purchases, rng)
    nus = [rng.gammavariate(SPEND[1], 1 / SPEND[2]) for _ in range(customers)]
    spend: dict[str, dict] = {}
    for x in events:
        day, n = FIRST_DAY + timedelta(days=x >> 40), (x >> 8) & 0xFFFFFFFF
        held = spend.setdefault(f"c{n:07d}", {})
        held[day] = held.get(day, 0) + max(1, round(rng.gammavariate(SPEND[0], 1 / nus[n]) * 100))
    return clv.spendings(spend, as_of)


def main() -> None:
    """Build the history, fit both models, print CPU seconds and the parameters."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--purchases", type=int, default=1_000_000)
    ap.add_argument("--profile", type=int, default=0)
    args = ap.parse_args()
    rows = history(args.customers, args.purchases)
    # The model library's import (a second of CPU) is the process's, paid once: the alerts worker pays it with
    # the fit of today's models it runs as it starts.
    i0 = time.process_time()
    import lifetimes  # noqa: F401

    imported = time.process_time() - i0
    prof = cProfile.Profile() if args.profile else None
    t0 = time.process_time()
    if prof:
        prof.enable()
    b = churn.fit_converging({c: s.history for c, s in rows.items()}, CLV_AS_OF)
    t1 = time.process_time()
    g = clv.fit_converging(rows, CLV_AS_OF)
    t2 = time.process_time()
    # The daily refit keeps each day's fit: the next day's first fit starts from it (a day's more history).
    later = CLV_AS_OF + timedelta(days=1)
    nxt = history(args.customers, args.purchases, as_of=later)
    t3 = time.process_time()
    w = churn.fit_converging({c: s.history for c, s in nxt.items()}, later, near=b)
    t4 = time.process_time()
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.profile)
    print(f"{len(rows)} customers: lifetimes' import {imported:.2f} CPU s; "
          f"BG/NBD {t1 - t0:.2f} CPU s r={b.r:.6g} alpha={b.alpha:.6g} a={b.a:.6g} b={b.b:.6g}; "
          f"Gamma-Gamma {t2 - t1:.2f} CPU s p={g.p:.6g} q={g.q:.6g} gamma={g.gamma:.6g} ({g.repeat_customers}); "
          f"the next day's BG/NBD from this one {t4 - t3:.2f} CPU s r={w.r:.6g} alpha={w.alpha:.6g} a={w.a:.6g} "
          f"b={w.b:.6g} (penalty {w.penalizer})")


if __name__ == "__main__":
    main()
