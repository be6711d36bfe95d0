"""``crm bench alerts``: a scheduled scan over a whole customer base, against the embedded SQLite store.

The store is seeded directly with a generated history (purchases at six stores over five months,
complaints, surveys, birthdays, loyalty balances and tiers, expiry announcements), every customer is
made due, the churn model is fitted, and the scheduler's own units of work are run as of one moment:
on a fresh store its first tick is a full pass over every customer, as after a rules change. Printed:
the scan's duration, its cost per customer, the configured scan interval and the share of it the scan
used, and the longest unit of work (the longest a consumed batch waits behind the scan); medians over
the runs. No broker is needed.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.alerts.config import AlertsConfig, RulesInForce
from services.alerts.handlers import Deps
from services.alerts.handlers.commands import fit_model
from services.alerts.handlers.timers import ScanResult, scan_unit
from services.alerts.store import ExpiryRow, LoyaltyRow, OccurrenceRow
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract.facts import FieldValue, PurchaseFact, epoch_ms
from shared.settings import Settings

STORES = ["SH-001", "SH-002", "BJ-001", "GZ-001", "SZ-001", "CD-001"]
AS_OF = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def seed(store: SqliteAlertsStore, customers: int, rng: random.Random) -> int:
    """A generated history for ``customers`` customers; returns the number of facts written."""
    written = 0
    start = AS_OF - timedelta(days=150)
    with store.transaction():
        for n in range(customers):
            cid = f"c_{n:07d}"
            home = rng.choice(STORES)
            visits = rng.choice([1, 2, 3, 5, 8, 12])
            stop = rng.random() < 0.3  # a third stopped coming some time ago
            span = 100 if stop else 150
            for k in range(visits):
                when = start + timedelta(days=rng.uniform(0, span))
                store.add_purchases([PurchaseFact("pos/" + home, f"{cid}-{k}", cid, f"o-{cid}-{k}",
                                                  rng.randint(50, 800) * 100, home if rng.random() < 0.8
                                                  else rng.choice(STORES), epoch_ms(when),
                                                  (when + timedelta(hours=8)).date().isoformat())])
                written += 1
            if rng.random() < 0.05:
                when = AS_OF - timedelta(days=rng.uniform(0, 60))
                store.add_occurrences([OccurrenceRow("complaint", f"complaint|{cid}", cid, epoch_ms(when), home)])
                written += 1
            if rng.random() < 0.1:
                when = AS_OF - timedelta(days=rng.uniform(0, 40))
                store.add_occurrences([OccurrenceRow("survey", f"survey|{cid}", cid, epoch_ms(when), None,
                                                     rng.randint(0, 10))])
                written += 1
            if rng.random() < 0.5:
                born = f"{rng.randint(1960, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                store.put_attributes([(cid, [FieldValue("birthday", born, 0, "wechat/oa", f"b-{cid}")])])
                written += 1
            if rng.random() < 0.4:
                tier = rng.choice([None, None, "C", "B", "A"])
                store.put_loyalty([LoyaltyRow(cid, tier, rng.randint(0, 9000), "2026-11-01T00:00:00.000000Z-1")])
                written += 1
                if rng.random() < 0.3:
                    expires = AS_OF + timedelta(days=rng.uniform(1, 90))
                    store.add_expiries([ExpiryRow(f"expiry|{cid}", cid, rng.randint(10, 500), epoch_ms(expires))])
                    written += 1
        store.set_due({f"c_{n:07d}": 0 for n in range(customers)})
    return written


def tick(deps: Deps, published: list) -> tuple[ScanResult, float]:
    """One tick of the scheduler, unit after unit as the batch thread runs them; the longest unit's seconds."""
    result, longest = ScanResult(deps.clock()), 0.0
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        unit = scan_unit("bench", deps=deps)
        published += unit.outbox
        longest = max(longest, time.perf_counter() - t0)
        result.add(unit)
        if not unit.more:
            break
    result.seconds = time.perf_counter() - started
    return result, longest


def one_run(customers: int, seed_no: int, config: AlertsConfig) -> dict[str, float]:
    """Seed a fresh store, fit the model, time the scheduler's first tick (a full pass), then two more."""
    with tempfile.TemporaryDirectory(prefix="crm-bench-alerts-") as tmp:
        store = SqliteAlertsStore(Path(tmp) / "crm.alerts.db")
        t0 = time.perf_counter()
        facts = seed(store, customers, random.Random(seed_no))
        seeded = time.perf_counter() - t0
        now = [AS_OF]
        deps = Deps(store=store, settings=Settings(_env_file=None), config=config, rules=RulesInForce(),
                    clock=lambda: now[0])
        t0 = time.perf_counter()
        fit_model(AS_OF.date(), deps=deps)
        fitted = time.perf_counter() - t0
        published: list = []
        cpu = time.process_time()
        result, longest = tick(deps, published)
        cpu = time.process_time() - cpu
        assert result.customers == customers, "every seeded customer was scanned"
        messages = len(published)
        again, _ = tick(deps, published)  # nothing is due twice
        now[0] = AS_OF + timedelta(days=1)
        next_day, _ = tick(deps, published)
        store.close()
        return {"seed_s": seeded, "facts": facts, "fit_s": fitted, "scan_s": result.seconds, "scan_cpu_s": cpu,
                "longest_unit_s": longest, "units": result.chunks,
                "alerts": result.counts.get("raised", 0), "messages": messages,
                "rescan_s": again.seconds, "rescanned": again.customers,
                "next_day_s": next_day.seconds, "next_day": next_day.customers}


def run(customers: int = 100_000, runs: int = 3) -> None:
    """Seed, fit and scan ``runs`` times; print medians."""
    console = Console()
    config = AlertsConfig()
    results = []
    for i in range(runs):
        r = one_run(customers, 1000 + i, config)
        results.append(r)
        console.print(f"run {i + 1}/{runs}: scan {r['scan_s']:.2f} s for {customers:,} customers, "
                      f"{r['alerts']:,} alerts raised (seeded {r['facts']:,} facts in {r['seed_s']:.1f} s)")
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    table = Table(title=f"crm bench alerts: scheduled scan, {customers:,} customers, median of {runs} runs "
                        "(SQLite, one worker; the machine is shared)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("scan duration", f"{med['scan_s']:.2f} s")
    table.add_row("per customer", f"{med['scan_s'] / customers * 1e6:.0f} µs")
    table.add_row("scan CPU time (this process; the rest is waiting for a shared core)", f"{med['scan_cpu_s']:.2f} s")
    table.add_row("configured scan interval (CRM_ALERTS_SCAN_INTERVAL_S)", f"{config.scan_interval_s:.0f} s")
    table.add_row("share of the interval used", f"{med['scan_s'] / config.scan_interval_s:.0%}")
    table.add_row(f"units of work ({config.scan_chunk} customers each)", f"{med['units']:.0f}")
    table.add_row("longest unit (the most a consumed batch waits behind the scan)",
                  f"{med['longest_unit_s'] * 1000:.0f} ms")
    table.add_row("alerts raised by the scan", f"{med['alerts']:,.0f}")
    table.add_row("messages published (alert changes + view parts)", f"{med['messages']:,.0f}")
    table.add_row("churn model fit (all customers; outside the batch thread)", f"{med['fit_s']:.2f} s")
    table.add_row("next scan at the same moment (nothing due)", f"{med['rescan_s'] * 1000:.1f} ms, "
                  f"{med['rescanned']:.0f} customers")
    table.add_row("scan a day later (only the customers due by then)", f"{med['next_day_s']:.2f} s, "
                  f"{med['next_day']:,.0f} customers")
    console.print(table)
