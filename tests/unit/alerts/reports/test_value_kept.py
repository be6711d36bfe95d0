"""Customer value fast (issues 15/16): one customer's standing in one pass agrees with the whole ranking, a
refund never takes off more than its order, and kept results live exactly one generation."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import date, timedelta

from services.alerts.reports.value import (
    Held,
    ValueTotals,
    applied,
    day_deltas,
    refund_deltas,
    standing_among,
    value_report,
)
from services.alerts.reports.value_cache import Kept
from shared.contract.facts import PurchaseFact

AS_OF = date(2026, 6, 30)


def _random_totals(rng: random.Random, n: int) -> list[ValueTotals]:
    out = []
    for i in range(n):
        first = AS_OF - timedelta(days=rng.randrange(700))
        last = first + timedelta(days=rng.randrange((AS_OF - first).days + 1))
        period_days = rng.choice([0, 1, 1, 2, 3, 5])  # ties on purpose: few distinct values
        days = period_days + rng.randrange(3) or 1
        out.append(ValueTotals(f"c{rng.randrange(10 * n):05d}-{i}", rng.choice([-500, 0, 1000, 1000, 2500, 9000]),
                               period_days, period_days, days, first, last))
    return out


def test_one_customers_standing_in_one_pass_is_its_standing_in_the_whole_ranking():
    rng = random.Random(16)
    for n in (1, 2, 7, 20, 101, 600):
        rows = _random_totals(rng, n)
        report = value_report(rows, as_of=AS_OF, months=12)
        for t in rows:
            assert standing_among(rows, t.customer_id, as_of=AS_OF) == report.standing(t), (n, t)
    assert standing_among(rows, "c_nobody", as_of=AS_OF) is None


def test_a_refund_takes_off_at_most_its_orders_amount_and_nothing_before_its_purchase():
    assert applied(Held("r1", "2026-01-05", 5000, 8000)) == 5000
    assert applied(Held("r1", "2026-01-05", 5000, 2000)) == 2000
    assert applied(Held(None, None, 0, 9000)) == 0  # only refunds came: nothing to take off yet
    assert applied(Held("r1", "2026-01-05", None, 9000)) == 9000  # kept before the cap: its amount is unknown
    # Two refunds of one order of 60.00: 40.00, then only the 20.00 left of the second 30.00.
    held = {"o2": Held("r1", "2026-02-01", 6000, 4000)}
    assert refund_deltas({"o2": 3000}, held) == Counter({("r1", "2026-02-01"): 2000})
    assert refund_deltas({"o2": 3000}, {"o2": Held("r1", "2026-02-01", 6000, 6000)}) == Counter()
    # A refund of 90.00 held before its purchase of 70.00 comes: the purchase lets 70.00 of it count.
    out = day_deltas([PurchaseFact("pos", "p3", "r1", "o3", 7000, "S01", 0, "2026-03-01")],
                     {"o3": Held(None, None, 0, 9000)})
    assert out.refund == Counter({("r1", "2026-03-01"): 7000})
    assert out.placed == {"o3": Held("r1", "2026-03-01", 7000, 9000)}


def test_a_kept_value_lives_one_generation_and_one_computation_serves_concurrent_requests():
    kept, calls = Kept(rows_limit=10), Counter()

    started = threading.Event()

    def compute(key, value, wait=None):
        def run():
            calls[key] += 1
            started.set()
            if wait is not None:
                assert wait.wait(5)
            return value
        return run

    assert kept.get("a", 1, compute("a", [1, 2])) == [1, 2]
    assert kept.get("a", 1, compute("a", [9])) == [1, 2] and calls["a"] == 1
    assert kept.peek("a", 2) is None
    assert kept.get("a", 2, compute("a", [3])) == [3] and calls["a"] == 2
    # Past the rows limit the least recently used goes.
    kept.get("b", 2, compute("b", list(range(10))))
    assert kept.peek("a", 2) is None and kept.peek("b", 2) == list(range(10))
    # Two requests for one key at once: the second waits for the first's computation.
    go, results = threading.Event(), []
    first = threading.Thread(target=lambda: results.append(kept.get("c", 1, compute("c", ["x"], go))))
    started.clear()
    first.start()
    assert started.wait(5)  # the first is computing; whenever the second asks, it gets the first's value
    second = threading.Thread(target=lambda: results.append(kept.get("c", 1, compute("c", ["y"]))))
    second.start()
    go.set()
    first.join(5)
    second.join(5)
    assert results == [["x"], ["x"]] and calls["c"] == 1
