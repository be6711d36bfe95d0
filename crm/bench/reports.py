"""``crm bench reports``: the report routes over a large history, and what the reports' aggregates cost per event.

A fresh alerts SQLite store is loaded through the store's own bulk fact methods (``add_purchases``,
``add_refunds``, ``apply_memberships``, ``put_owners``: the calls the consume path makes, so every aggregate kept
inside them is built): ``customers`` customers owned by six stores (1% with a second record merged into them),
``purchases`` purchases over two years in time order, in batches of ``batch``, and a partial refund of 3% of
them. While loading, the time spent in the aggregates' own code (the methods named in ``AGGREGATES``) is taken
per batch, and printed per event for the first and the last tenth of the load: constant if history does not
make it dearer. Then alerts' API is served over HTTP on a free local port and each route in ``REPORTS`` is
called several times; the median, the slowest and the size of each answer are printed.
"""

from __future__ import annotations

import random
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from services.alerts.config import AlertsConfig
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract.facts import PurchaseFact, RefundFact
from shared.settings import Settings
from shared.storage.membership import Membership
from shared.storage.owners import OwnerRow

STORES = ["SH-001", "SH-002", "BJ-001", "GZ-001", "SZ-001", "CD-001"]
FIRST_DAY, DAYS = date(2024, 12, 1), 730
AS_OF = FIRST_DAY + timedelta(days=DAYS - 1)
KEY = "bench-reports-admin"
# The report routes timed (name, path with query): each part of issue 15 adds its own here.
REPORTS: list[tuple[str, str]] = [
    ("customer-value, company, 12 months", f"/v1/reports/customer-value?as_of={AS_OF}&limit=100"),
    ("customer-value, one store", f"/v1/reports/customer-value?as_of={AS_OF}&store_id=SH-001&limit=100"),
    ("customer-value, company, CSV", f"/v1/reports/customer-value?as_of={AS_OF}&format=csv"),
]
# The store methods that keep the reports' aggregates (timed while loading); other parts add theirs.
AGGREGATES: list[str] = ["fresh_facts", "keep_value_purchases", "keep_value_refunds"]
VISITS = [1, 2, 3, 5, 8, 12, 20, 29]  # purchases per customer, 10 on average


class Timed:
    """Wraps a store's aggregate methods on the instance and adds up the CPU seconds spent in them (CPU, not
    wall: the machine is shared, and waiting for a core is not what the aggregate costs)."""

    def __init__(self, store: SqliteAlertsStore, names: list[str]) -> None:
        self.seconds = 0.0
        for name in names:
            if hasattr(store, name):
                setattr(store, name, self._wrap(getattr(store, name)))

    def _wrap(self, method):
        def timed(*args, **kwargs):
            t0 = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - t0
        return timed


def plan(customers: int, purchases: int, rng: random.Random) -> list[int]:
    """Every purchase as one int (day, customer, its number), in time order; about ``purchases`` of them."""
    scale = purchases / (customers * statistics.mean(VISITS))
    out = []
    for n in range(customers):
        for k in range(max(1, round(rng.choice(VISITS) * scale))):
            out.append((rng.randrange(DAYS) << 40) | (n << 8) | min(k, 255))
    out.sort()
    return out


def load(store: SqliteAlertsStore, *, customers: int, purchases: int, batch: int, seed: int) -> dict:
    """Load the generated history through the bulk fact methods; per-event aggregate seconds early and late."""
    rng = random.Random(seed)
    at = "2024-11-01T00:00:00.000000Z"
    with store.transaction():
        store.put_owners([OwnerRow(f"c{n:07d}", STORES[n % len(STORES)], at) for n in range(customers)])
        store.apply_memberships([Membership(f"c{n:07d}", f"c{n:07d}", at) for n in range(customers)]
                                + [Membership(f"r{n:07d}", f"c{n:07d}", at) for n in range(0, customers, 100)])
    events = plan(customers, purchases, rng)
    timed = Timed(store, AGGREGATES)
    per_batch: list[tuple[int, float, float]] = []  # (events, aggregate seconds, all seconds)
    refunds = 0
    for start in range(0, len(events), batch):
        rows, back = [], []
        for i, x in enumerate(events[start:start + batch], start):
            day, n, k = x >> 40, (x >> 8) & 0xFFFFFFFF, x & 0xFF
            record = f"r{n:07d}" if n % 100 == 0 and k % 2 else f"c{n:07d}"
            amount = rng.randint(50, 2000) * 100
            order = f"{STORES[n % len(STORES)]}-{i:09d}"  # a till's order numbers grow with time
            rows.append(PurchaseFact("pos/bench", f"p{n:07d}-{k}", record, order, amount,
                                     STORES[n % len(STORES)], 0, (FIRST_DAY + timedelta(days=day)).isoformat()))
            if rng.random() < 0.03:
                back.append(RefundFact("pos/bench", f"x{n:07d}-{k}", record, order, amount // 4, 0))
        refunds += len(back)
        before, t0 = timed.seconds, time.process_time()
        with store.transaction():
            store.add_purchases(rows)
            store.add_refunds(back)
        per_batch.append((len(rows) + len(back), timed.seconds - before, time.process_time() - t0))
    tenth = max(1, len(per_batch) // 10)

    def us_per_event(part: list[tuple[int, float, float]], i: int) -> float:
        return sum(p[i] for p in part) / sum(p[0] for p in part) * 1e6

    tenths = [per_batch[j:j + tenth] for j in range(0, tenth * 10, tenth)]
    return {"purchases": len(events), "refunds": refunds, "batches": len(per_batch),
            "aggregate_us": [us_per_event(t, 1) for t in tenths if t],
            "all_us": [us_per_event(t, 2) for t in tenths if t]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(store: SqliteAlertsStore):
    """Alerts' API over this store on a free local port, in a thread; returns (base url, server)."""
    import uvicorn

    from services.alerts.app import create_app

    settings = Settings(_env_file=None, api_keys=f"{KEY}:admin")
    now = datetime.combine(AS_OF, datetime.min.time(), UTC) + timedelta(hours=12)
    service = create_app(settings, store=store, publish=lambda _: None, clock=lambda: now,
                         config=AlertsConfig(_env_file=None))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(service.api, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the alerts API did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def time_reports(base: str, calls: int) -> list[tuple[str, float, float, float, int]]:
    """(name, median s, slowest s, median CPU s, bytes) of each report route over ``calls`` calls (one warm-up
    first). The server runs in this process, so the process's CPU time over a call is the server's (and the
    client's, small): the figure a shared machine's load does not move."""
    out = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
        for name, path in REPORTS:
            r = client.get(path)
            r.raise_for_status()
            took, cpu = [], []
            for _ in range(calls):
                t0, c0 = time.perf_counter(), time.process_time()
                r = client.get(path)
                took.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                r.raise_for_status()
            out.append((name, statistics.median(took), max(took), statistics.median(cpu), len(r.content)))
    return out


def run(customers: int = 100_000, purchases: int = 1_000_000, batch: int = 1000, calls: int = 5) -> None:
    """Load, serve, time; print the figures."""
    console = Console()
    with tempfile.TemporaryDirectory(prefix="crm-bench-reports-") as tmp:
        store = SqliteAlertsStore(Path(tmp) / "crm.alerts.db")
        t0 = time.perf_counter()
        loaded = load(store, customers=customers, purchases=purchases, batch=batch, seed=15)
        load_s = time.perf_counter() - t0
        console.print(f"loaded {loaded['purchases']:,} purchases and {loaded['refunds']:,} refunds of "
                      f"{customers:,} customers in {load_s:.0f} s ({loaded['batches']:,} batches of {batch})")
        base, server = serve(store)
        try:
            timings = time_reports(base, calls)
        finally:
            server.should_exit = True
        table = Table(title=f"crm bench reports: {customers:,} customers, {loaded['purchases']:,} purchases "
                            f"(SQLite; median of {calls} calls over HTTP; the machine is shared)")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for name, median, slowest, cpu, size in timings:
            table.add_row(f"{name}", f"{median:.2f} s (slowest {slowest:.2f} s; CPU {cpu:.2f} s; "
                                     f"{size / 1024:,.0f} KiB)")
        agg, whole = loaded["aggregate_us"], loaded["all_us"]
        table.add_row("aggregates' CPU per event, first → last tenth of the load",
                      f"{agg[0]:.1f} → {agg[-1]:.1f} µs")
        table.add_row("  each tenth", " ".join(f"{x:.1f}" for x in agg))
        table.add_row("the whole bulk calls' CPU per event (facts too), each tenth",
                      " ".join(f"{x:.0f}" for x in whole))
        console.print(table)
        store.close()
