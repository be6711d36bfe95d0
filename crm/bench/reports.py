"""``crm bench reports``: every report route over a large history, and what the reports' aggregates cost per event.

A fresh alerts SQLite store is loaded the way the consume path keeps a batch: each batch of events is folded
into a ``consume.Fold`` and kept by ``consume._keep`` (purchases, refunds, the attendance sheet's sittings with
the meal periods of the stores that have them, non-members' store sales, surveys) and ``satisfaction.keep``
(survey scores, purchase days), so every aggregate is built by the code that builds it in production. The
history: ``customers`` customers owned by six stores (1% with a second record merged into them, 5% with an
account manager, each with a loyalty tier), about ``purchases`` purchases over two years in time order (each
customer's as BG/NBD assumes them, :data:`BGNBD`: customers join over the two years and end after a purchase with
a Beta-distributed probability, as real bases such as CDNOW do), in batches of
``batch``, a partial refund of 3% of them, non-members' sales (10% as many), a survey after 5% of purchases, and
a few thousand resolved alerts' reasons. While loading, the CPU time spent in the aggregates' own code (the
callables in ``AGGREGATES``) is taken per batch, and printed per event for the first and the last tenth of the
load: constant if history does not make it dearer. Then alerts' API is served over HTTP on a free local port
and each route in ``REPORTS`` is called several times; the median, the slowest, the CPU per call and the size
of each answer are printed. As the service does when it starts, today's churn and CLV models are fitted first
(timed: the process's first fit, the model library's import included); then the CLV model of another date, kept
for nothing, is fitted by its first call (BG/NBD and Gamma-Gamma over every customer, started from the nearest
kept fit) and timed apart from the later calls, which read the kept fit.
"""

from __future__ import annotations

import random
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
from rich.console import Console
from rich.table import Table

from services.alerts.config import AlertsConfig
from services.alerts.handlers import consume, satisfaction
from services.alerts.reports import attendance
from services.alerts.reports.satisfaction import REASONS, ReasonRow
from services.alerts.store import LoyaltyRow, OccurrenceRow
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.settings import Settings
from shared.storage.membership import Membership
from shared.storage.owners import OwnerRow
from shared.streaming.batch import BatchOutcome

# (store, region, meal periods): the restaurants count lunch and dinner as two visits.
STORES = [("SH-001", "east", ""), ("SH-002", "east", "lunch=10:30-15:00;dinner=16:30-22:30"),
          ("BJ-001", "north", ""), ("GZ-001", "south", ""), ("SZ-001", "south", ""),
          ("CD-001", "west", "lunch=11:00-14:30;dinner=17:00-22:00")]
STORE_IDS = [s for s, _, _ in STORES]
ZONE = "Asia/Shanghai"
FIRST_DAY, DAYS = date(2024, 12, 1), 730
AS_OF = FIRST_DAY + timedelta(days=DAYS - 1)
MONTH = f"{AS_OF:%Y-%m}"
CLV_AS_OF = AS_OF - timedelta(days=1)  # a date no fit is kept for: its first call fits the models
KEY = "bench-reports-admin"
# The report routes timed (name, path with query). A route named "... first fit" is called once (it fits and
# keeps a model); the others several times after one warm-up call. Before each call of a route named "... right
# after a write" one purchase is kept through the store (as the consume path keeps it): what the customer-value
# report keeps between calls is then stale and that call computes afresh (the figure a write-heavy day sees).
REPORTS: list[tuple[str, str]] = [
    ("store KPIs, one store", f"/v1/reports/stores/SH-001?month={MONTH}"),
    ("store KPIs, one store, CSV", f"/v1/reports/stores/SH-001?month={MONTH}&format=csv"),
    ("store KPIs, region (2 stores)", f"/v1/reports/regions/south?month={MONTH}"),
    ("store KPIs, region, CSV", f"/v1/reports/regions/south?month={MONTH}&format=csv"),
    ("store KPIs, company", f"/v1/reports/company?month={MONTH}"),
    ("store KPIs, company, CSV", f"/v1/reports/company?month={MONTH}&format=csv"),
    ("attendance, restaurant with meal periods", f"/v1/reports/attendance?store_id=SH-002&month={MONTH}"),
    ("attendance, restaurant, CSV", f"/v1/reports/attendance?store_id=SH-002&month={MONTH}&format=csv"),
    ("attendance, store without periods", f"/v1/reports/attendance?store_id=SH-001&month={MONTH}"),
    ("customer-value, company, 12 months", f"/v1/reports/customer-value?as_of={AS_OF}&limit=100"),
    ("customer-value, company, right after a write", f"/v1/reports/customer-value?as_of={AS_OF}&limit=100"),
    ("customer-value, one store", f"/v1/reports/customer-value?as_of={AS_OF}&store_id=SH-001&limit=100"),
    ("customer-value, one store, right after a write",
     f"/v1/reports/customer-value?as_of={AS_OF}&store_id=SH-001&limit=100"),
    ("customer-value, company, CSV", f"/v1/reports/customer-value?as_of={AS_OF}&format=csv"),
    ("clv-model, first fit", f"/v1/reports/clv-model?as_of={CLV_AS_OF}"),
    ("clv-model, fit kept", f"/v1/reports/clv-model?as_of={CLV_AS_OF}"),
    ("clv-model, today's (fitted at start)", "/v1/reports/clv-model"),
    ("customer value (CLV) of one customer", f"/v1/customers/c0000042/value?as_of={CLV_AS_OF}"),
    ("customer value (CLV) of one customer, right after a write", f"/v1/customers/c0000042/value?as_of={CLV_AS_OF}"),
    ("satisfaction, one store", f"/v1/reports/satisfaction?store_id=SH-001&month={MONTH}"),
    ("satisfaction, company", f"/v1/reports/satisfaction?month={MONTH}"),
    ("churn-reasons, one store", f"/v1/reports/churn-reasons?store_id=SH-001&month={MONTH}"),
    ("churn-reasons, company", f"/v1/reports/churn-reasons?month={MONTH}"),
]
# What keeps the reports' aggregates, timed while loading: (module or "store", callable's name). Nested calls
# (``add_store_sales`` calls ``kpi_add``; ``satisfaction.keep`` calls the store's methods) count once in the
# total, and in each name's own line with what it calls.
AGGREGATES: list[tuple[str, str]] = [
    ("store", "fresh_facts"), ("store", "keep_value_purchases"), ("store", "keep_value_refunds"),
    ("store", "kpi_add"), ("store", "add_store_sales"), ("store", "add_sittings"),
    ("store", "add_visit_days"), ("store", "add_survey_scores"),
    ("attendance", "sittings"), ("satisfaction", "keep"),
]
# Amounts as Gamma-Gamma assumes them (p, q, γ in yuan: 300 yuan on average): a customer's spending rate ν is
# Gamma(q, γ), each purchase Gamma(p, ν); amounts with no difference between customers leave q unbounded and
# the spend model would not converge.
SPEND = (6.0, 4.0, 150.0)
# Purchases as BG/NBD assumes them (Fader, Hardie & Lee 2005), as real customer bases (CDNOW) behave: while alive
# a customer buys at a rate λ ~ Gamma(r, α) per week, and after each purchase ends for good with a probability
# p ~ Beta(a, b). Every customer buying at random days of the two years until the end, with no dropouts, is a
# history BG/NBD cannot fit unpenalised (a → 0: the optimiser loses precision), so the first fit of the CLV
# model paid for three failed fits. Customers join over the whole two years (the first purchase at a uniform
# day), 10.2 purchases each on average (a 10th of them buy once), about ``purchases`` in all.
BGNBD = (2.0, 3.3, 2.0, 19.0)  # r, α (weeks), a, b
PER_CUSTOMER = 10  # the purchases per customer the parameters above give (10.2), for scaling to other sizes
HOURS = [9, 11, 12, 12, 13, 14, 17, 18, 19, 19, 20, 21, 23]  # local hours of purchases (some outside every period)


class Timed:
    """Wraps the aggregates' callables in place and adds up the CPU seconds spent in them (CPU, not wall: the
    machine is shared, and waiting for a core is not what the aggregate costs); restores them on ``close``."""

    def __init__(self, targets: list[tuple[object, str]]) -> None:
        self.seconds = 0.0
        self.each: Counter = Counter()
        self._depth = 0
        self._saved = []
        for owner, name in targets:
            if hasattr(owner, name):
                self._saved.append((owner, name, getattr(owner, name)))
                setattr(owner, name, self._wrap(name, getattr(owner, name)))

    def _wrap(self, name, method):
        def timed(*args, **kwargs):
            t0 = time.process_time()
            self._depth += 1
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                took = time.process_time() - t0
                self.each[name] += took
                if not self._depth:
                    self.seconds += took
        return timed

    def close(self) -> None:
        """Put the wrapped callables back."""
        for owner, name, method in self._saved:
            if isinstance(owner, SqliteAlertsStore):
                delattr(owner, name)
            else:
                setattr(owner, name, method)


def plan(customers: int, purchases: int, rng: random.Random) -> list[int]:
    """Every purchase as one int (day, customer, its number), in time order; about ``purchases`` of them, each
    customer's made by the BG/NBD process of :data:`BGNBD` from a first purchase on a uniform day."""
    r, alpha, a, b = BGNBD
    # Scaled to another size, a customer buys ``scale`` times as often and stays ``scale`` times as long.
    scale = purchases / (customers * PER_CUSTOMER)
    b = (a - 1) * scale * (1 + b / (a - 1)) - (a - 1)  # the mean purchases before ending, 1 + b/(a-1), scaled
    out = []
    for n in range(customers):
        rate = rng.gammavariate(r, 1 / alpha) * scale / 7  # per day
        ends = rng.betavariate(a, b)
        t = rng.random() * DAYS
        k = 0
        while True:
            out.append((int(t) << 40) | (n << 8) | k)
            k += 1
            if k > 255 or rng.random() < ends:
                break
            t += rng.expovariate(rate)
            if t >= DAYS:
                break
    out.sort()
    return out


def _settings(stores_file: Path) -> Settings:
    return Settings(_env_file=None, api_keys=f"{KEY}:admin", stores_file=str(stores_file), timezone=ZONE)


def _stores_file(folder: Path) -> Path:
    path = folder / "stores.csv"
    path.write_text("store_id,name,region,timezone,meal_periods\n"
                    + "".join(f"{s},{s},{region},{ZONE},{periods}\n" for s, region, periods in STORES))
    return path


def _setup(store: SqliteAlertsStore, customers: int, rng: random.Random) -> None:
    """Owners, merged records, loyalty tiers and account managers: what identity and loyalty announce."""
    at = "2024-11-01T00:00:00.000000Z"
    ms = int(datetime(2024, 11, 1, tzinfo=UTC).timestamp() * 1000)
    tiers = ["bronze"] * 6 + ["silver"] * 3 + ["gold"]
    with store.transaction():
        store.put_owners([OwnerRow(f"c{n:07d}", STORE_IDS[n % len(STORE_IDS)], at) for n in range(customers)])
        store.apply_memberships([Membership(f"c{n:07d}", f"c{n:07d}", at) for n in range(customers)]
                                + [Membership(f"r{n:07d}", f"c{n:07d}", at) for n in range(0, customers, 100)])
        store.put_loyalty([LoyaltyRow(f"c{n:07d}", rng.choice(tiers), rng.randrange(5000), "1")
                           for n in range(customers)])
        store.put_attributes([(f"c{n:07d}", [FieldValue("attributes.account_manager", f"am-{n % 40:02d}", ms,
                                                        "crm/bench", f"am{n:07d}")])
                              for n in range(0, customers, 20)])


def _batch(events: list[int], start: int, batch: int, rng: random.Random, zone, nus: list[float]) -> consume.Fold:
    """One batch of events as the consume path's handlers fold them; ``nus`` each customer's spending rate."""
    fold = consume.Fold(BatchOutcome(), set())
    for i, x in enumerate(events[start:start + batch], start):
        day, n, k = x >> 40, (x >> 8) & 0xFFFFFFFF, x & 0xFF
        record = f"r{n:07d}" if n % 100 == 0 and k % 2 else f"c{n:07d}"
        store_id = STORE_IDS[n % len(STORE_IDS)]
        restaurant = STORES[n % len(STORES)][2] != ""
        local = datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time(), zone).replace(
            hour=rng.choice(HOURS), minute=rng.randrange(60))
        ms = int(local.timestamp() * 1000)
        amount = max(1, round(rng.gammavariate(SPEND[0], 1 / nus[n]) * 100))
        order = f"{store_id}-{i:09d}"  # a till's order numbers grow with time
        covers = rng.choice([None, 1, 2, 2, 3, 4, 6, 8]) if restaurant else None
        fold.purchases.append(PurchaseFact("pos/bench", f"p{n:07d}-{k}", record, order, amount, store_id, ms,
                                           local.date().isoformat(), covers=covers))
        fold.events.append(("pos/bench", f"p{n:07d}-{k}"))
        if rng.random() < 0.03:
            fold.refunds.append(RefundFact("pos/bench", f"x{n:07d}-{k}", record, order, amount // 4, ms + 3600_000))
            fold.events.append(("pos/bench", f"x{n:07d}-{k}"))
        if rng.random() < 0.10:  # a walk-in: no customer identifier at all, store totals only
            fold.sales.append(PurchaseFact("pos/bench", f"w{i:09d}", "", f"{order}-w", rng.randint(20, 600) * 100,
                                           store_id, ms, local.date().isoformat()))
            fold.events.append(("pos/bench", f"w{i:09d}"))
        if rng.random() < 0.05:  # a survey after the visit; half name the store, half count at the owner's
            key = f"survey|survey/bench|s{i:09d}"
            fold.occurrences.append(OccurrenceRow("survey", key, record, ms + 7200_000,
                                                  store_id if i % 2 else None, rng.choice(range(11))))
            fold.events.append(("survey/bench", f"s{i:09d}"))
    return fold


def load(store: SqliteAlertsStore, settings: Settings, *, customers: int, purchases: int, batch: int,
         seed: int) -> dict:
    """Load the generated history through the consume path's keeping; per-event aggregate seconds early, late."""
    rng = random.Random(seed)
    _setup(store, customers, rng)
    events = plan(customers, purchases, rng)
    nus = [rng.gammavariate(SPEND[1], 1 / SPEND[2]) for _ in range(customers)]
    deps = SimpleNamespace(store=store, settings=settings)
    owners = {"store": store, "attendance": attendance, "satisfaction": satisfaction}
    timed = Timed([(owners[where], name) for where, name in AGGREGATES])
    per_batch: list[tuple[int, float, float, Counter]] = []  # (events, aggregate s, all s, each aggregate's s)
    kinds: Counter = Counter()
    zone = settings.store_zone(None)
    try:
        for start in range(0, len(events), batch):
            fold = _batch(events, start, batch, rng, zone, nus)
            kinds.update(purchases=len(fold.purchases), refunds=len(fold.refunds), sales=len(fold.sales),
                         surveys=len(fold.occurrences))
            before, each, t0 = timed.seconds, Counter(timed.each), time.process_time()
            with store.transaction():
                consume._keep(fold, deps)  # type: ignore[arg-type]
                satisfaction.keep(fold, deps=deps)  # type: ignore[arg-type]
            per_batch.append((len(fold.events), timed.seconds - before, time.process_time() - t0,
                              timed.each - each))
    finally:
        timed.close()
    with store.transaction():  # staff resolving churn and complaint alerts of the last months, with reasons
        for j in range(3000):
            month = f"{AS_OF - timedelta(days=rng.randrange(90)):%Y-%m}"
            store.put_reason(ReasonRow(f"bench-{j}", rng.choice(["complaint", "churn_red", "churn_model"]),
                                       STORE_IDS[j % len(STORE_IDS)], month, rng.choice([*REASONS[:4], None]),
                                       None, f"c{rng.randrange(customers):07d}", f"{AS_OF}T10:00:00.000000Z"))
    tenth = max(1, len(per_batch) // 10)
    tenths = [per_batch[j:j + tenth] for j in range(0, tenth * 10, tenth)]

    def us(part, i) -> float:
        return sum(p[i] for p in part) / sum(p[0] for p in part) * 1e6

    def us_each(part) -> dict[str, float]:
        n = sum(p[0] for p in part)
        return {name: sum(p[3][name] for p in part) / n * 1e6 for _, name in AGGREGATES}

    return {**kinds, "batches": len(per_batch), "events": sum(p[0] for p in per_batch),
            "aggregate_us": [us(t, 1) for t in tenths if t], "all_us": [us(t, 2) for t in tenths if t],
            "first": us_each(tenths[0]), "last": us_each(tenths[-1])}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alerts(store: SqliteAlertsStore, settings: Settings):
    """Alerts over this store, its clock at noon (UTC) of the history's last day."""
    from services.alerts.app import create_app

    now = datetime.combine(AS_OF, datetime.min.time(), UTC) + timedelta(hours=12)
    return create_app(settings, store=store, publish=lambda _: None, clock=lambda: now,
                      config=AlertsConfig(_env_file=None))


def fit_at_start(service) -> tuple[float, float]:
    """What the alerts worker does as it starts (its refit task): today's churn and CLV models fitted and kept;
    (wall s, CPU s)."""
    from services.alerts.handlers import timers

    t0, c0 = time.perf_counter(), time.process_time()
    timers.scheduled_refit(deps=service.deps)
    return time.perf_counter() - t0, time.process_time() - c0


def serve(store: SqliteAlertsStore, settings: Settings, *, service=None):
    """Alerts' API over this store (or ``service``'s) on a free local port, in a thread; returns (base url,
    server)."""
    import uvicorn

    service = service or alerts(store, settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(service.api, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the alerts API did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def write_one(store: SqliteAlertsStore) -> Callable[[], None]:
    """A callable keeping one new purchase (of a customer the routes do not name) through the store, as the
    consume path keeps a batch: it bumps what the customer-value report reads."""
    count = iter(range(1 << 30))

    def write() -> None:
        n = next(count)
        with store.transaction():
            store.add_purchases([PurchaseFact("pos/bench", f"after-write-{n}", "c0000007", f"after-write-{n}", 1000,
                                              STORE_IDS[1], 0, AS_OF.isoformat())])
    return write


def time_reports(base: str, calls: int, write: Callable[[], None] | None = None
                 ) -> list[tuple[str, int, float, float, float, int, int | str]]:
    """(name, calls, median s, slowest s, median CPU s, bytes, status) of each report route: ``calls`` calls after
    one warm-up, or a single call for a first fit; ``write`` before each call of a route timed right after a
    write. The server runs in this process, so the process's CPU time over a call is the server's (and the
    client's, small): the figure a shared machine's load does not move."""
    out = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=600) as client:
        for name, path in REPORTS:
            once = name.endswith("first fit")
            after_write = name.endswith("right after a write")
            if not once:
                client.get(path)
            took, cpu = [], []
            for _ in range(1 if once else calls):
                if after_write and write is not None:
                    write()
                t0, c0 = time.perf_counter(), time.process_time()
                r = client.get(path)
                took.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            out.append((name, len(took), statistics.median(took), max(took), statistics.median(cpu),
                        len(r.content), r.status_code if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"))
    return out


def run(customers: int = 100_000, purchases: int = 1_000_000, batch: int = 1000, calls: int = 5) -> None:
    """Load, serve, time; print the figures."""
    console = Console(width=200)
    with tempfile.TemporaryDirectory(prefix="crm-bench-reports-") as tmp:
        settings = _settings(_stores_file(Path(tmp)))
        store = SqliteAlertsStore(Path(tmp) / "crm.alerts.db")
        t0, c0 = time.perf_counter(), time.process_time()
        loaded = load(store, settings, customers=customers, purchases=purchases, batch=batch, seed=15)
        load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
        console.print(f"loaded {loaded['events']:,} events ({loaded['purchases']:,} purchases, {loaded['refunds']:,}"
                      f" refunds, {loaded['sales']:,} non-members' sales, {loaded['surveys']:,} surveys) of "
                      f"{customers:,} customers in {load_s:.0f} s (CPU {load_cpu:.0f} s; {loaded['batches']:,} "
                      f"batches of {batch} purchases)")
        service = alerts(store, settings)
        at_start = fit_at_start(service)
        base, server = serve(store, settings, service=service)
        try:
            timings = time_reports(base, calls, write_one(store))
        finally:
            server.should_exit = True
        table = Table(title=f"crm bench reports: {customers:,} customers, {loaded['purchases']:,} purchases "
                            f"(SQLite; median of {calls} calls over HTTP; the machine is shared)")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("clv-model, today's, fitted as the service starts (the process's first fit)",
                      f"{at_start[0]:.2f} s (CPU {at_start[1]:.2f} s)")
        for name, n, median, slowest, cpu, size, status in timings:
            shown = f"{median:.2f} s" if n > 1 else f"{median:.2f} s (one call)"
            table.add_row(name if status == 200 else f"{name} (not 200, below)",
                          f"{shown} (slowest {slowest:.2f} s; CPU {cpu:.2f} s; {size / 1024:,.1f} KiB)")
        agg, whole = loaded["aggregate_us"], loaded["all_us"]
        table.add_row("aggregates' CPU per event, first → last tenth of the load",
                      f"{agg[0]:.1f} → {agg[-1]:.1f} µs")
        table.add_row("  each tenth", " ".join(f"{x:.1f}" for x in agg))
        for _, name in AGGREGATES:
            table.add_row(f"  {name} (with what it calls), first → last tenth",
                          f"{loaded['first'][name]:.1f} → {loaded['last'][name]:.1f} µs")
        table.add_row("the whole keeping's CPU per event (facts too), each tenth",
                      " ".join(f"{x:.0f}" for x in whole))
        console.print(table)
        for name, *_, status in timings:
            if status != 200:
                console.print(f"{name}: HTTP {status}", markup=False)
        store.close()
