"""``crm bench loyalty``: ledger updates per second through the embedded platform, against identity's own
rate measured in the same run, and what one event costs a member with a long history.

Per run, on a fresh embedded platform (``crm.bench.platform``):

1. **Identity.** Purchases and refunds are published to the channel topics first; then identity starts
   with the workers ``crm up`` gives it (2) and drains them. Its rate is events announced on its output
   topics per second, from the moment every worker holds its partitions to the last announcement.
2. **Loyalty.** Then loyalty starts (as many workers as ``crm up`` gives it) on identity's output backlog.
   Its rate, the ledger updates, is purchase and refund events kept and settled per second, from its
   first to its last fact; ledger entries written per second are shown beside it.
3. **Long history** (in process, no broker). One member holds ``history`` purchases; the cost of one more
   purchase, settled alone in its own batch as it arrives in quiet times, is timed against the same for a
   member with a single purchase. Cost that grows with the history makes a long-tenure member's events
   quadratic over their life; the settle must stay bounded.

Figures are medians over the runs; the machine may be shared, so compare figures of one run.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import typer

from crm.bench.identity import Announcements
from crm.bench.platform import bench_platform, median
from crm.replay import publish_lines


def events_for(count: int, *, seed: int = 5) -> list[str]:
    """Purchases (about 9 in 10) and refunds for ``count // 60`` customers identified by phone."""
    rng = random.Random(seed)
    people = max(1, count // 60)
    phones = [f"138{rng.randrange(10**8):08d}" for _ in range(people)]
    out, orders = [], []
    while len(out) < count:
        phone = rng.choice(phones)
        if orders and rng.random() < 0.1:
            oid, amount, who = rng.choice(orders)
            out.append({"specversion": "1.0", "id": f"R{len(out)}", "source": "pos/SH-001", "type": "crm.refund",
                        "time": "2026-11-20T12:00:00+08:00",
                        "data": {"identity": {"phone": who}, "order_id": oid,
                                 "amount": str((amount / 4).quantize(Decimal("0.01")))}})
            continue
        oid, amount = f"B{len(out)}", Decimal(rng.randrange(100, 100000)) / 100
        orders.append((oid, amount, phone))
        out.append({"specversion": "1.0", "id": oid, "source": "pos/SH-001", "type": "crm.purchase",
                    "time": f"2026-{rng.randrange(6, 12):02d}-{rng.randrange(1, 29):02d}T12:00:00+08:00",
                    "data": {"identity": {"phone": phone}, "order_id": oid, "amount": str(amount), "currency": "CNY",
                             "store_id": "SH-001", "items": [{"sku": "SK-1", "category": "skincare", "quantity": 1,
                                                              "unit_price": str(amount)}]}})
    return [json.dumps(e) for e in out]


def _count(path: Path, sql: str) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    finally:
        conn.close()


def _window(count: Callable[[], int], total: int, *, timeout_s: float) -> tuple[float, int]:
    """Seconds from the first unit done to the last (polled every 20 ms), and the units done."""
    deadline = time.monotonic() + timeout_s
    first = None
    while time.monotonic() < deadline:
        n = count()
        if n and first is None:
            first = time.monotonic()
        if n >= total:
            return time.monotonic() - (first or time.monotonic()), n
        time.sleep(0.02)
    raise RuntimeError(f"not finished within {timeout_s:.0f} s ({count()} of {total})")


def one_run(lines: list[str]) -> dict[str, float]:
    """One run on a fresh platform: identity's rate, then loyalty's on identity's output."""
    with bench_platform() as platform:
        env = {"CRM_LOYALTY_EXPIRY_MODE": "never", "CRM_LOYALTY_CATEGORY_MULTIPLIERS": "skincare=2"}
        platform.env.update(env)
        publish_lines(lines, platform.settings, batch=2000)
        reader = Announcements(platform.bootstrap)
        try:
            settled = platform.start("identity", workers=platform.settings.workers_of("identity"))
            reader.wait(len(lines), timeout=900)
            identity_rate = reader.rate_since(settled)
        finally:
            reader.close()
        platform.start("loyalty", workers=platform.settings.workers_of("loyalty"))
        db = platform.data_dir / "crm.loyalty.db"
        seconds, facts = _window(lambda: _count(db, "SELECT (SELECT COUNT(*) FROM purchases)"
                                                    " + (SELECT COUNT(*) FROM refunds)"), len(lines), timeout_s=900)
        entries = _count(db, "SELECT COUNT(*) FROM ledger")
    return {"identity_eps": identity_rate, "loyalty_eps": facts / seconds, "entries_ps": entries / seconds,
            "ratio": facts / seconds / identity_rate}


def long_history(history: int, *, repeats: int = 20) -> dict[str, float]:
    """Milliseconds to keep and settle one more purchase of a member with ``history`` purchases, and of a
    member with one (in process, the embedded SQLite store, one purchase per batch)."""
    from services.loyalty import messages
    from services.loyalty.config import LoyaltySettings, RulesSource
    from services.loyalty.handlers import Deps
    from services.loyalty.store.sqlite import SqliteLoyaltyStore
    from shared.contract.messages import CustomerEventResolved, encode
    from shared.settings import Settings
    from shared.streaming.batch import Incoming

    now = datetime(2026, 11, 20, 4, tzinfo=UTC)
    offsets = iter(range(10**9))

    def msg(customer: str, n: int, when: datetime) -> Incoming:
        event = {"specversion": "1.0", "id": f"{customer}-{n}", "source": "pos/SH-001", "type": "crm.purchase",
                 "time": when.isoformat(), "data": {"identity": {"member_id": customer}, "order_id": f"{customer}-{n}",
                                                    "amount": "88.00", "currency": "CNY", "store_id": "SH-001"}}
        body = CustomerEventResolved(customer_id=customer, record_id=customer, event=event, resolved_at=when)
        return Incoming(encode(body), "crm.customer.events", 0, next(offsets), [], customer.encode())

    with tempfile.TemporaryDirectory(prefix="crm-bench-loyalty-") as tmp:
        settings = Settings(_env_file=None)
        config = LoyaltySettings(_env_file=None)
        zone = ZoneInfo(settings.timezone)
        deps = Deps(store=SqliteLoyaltyStore(Path(tmp) / "loyalty.db"), settings=settings, config=config,
                    rules=RulesSource(config, zone), clock=lambda: now, zone=zone)
        # Two years of history, oldest first, in batches as a backlog would arrive.
        span = timedelta(days=730) / max(1, history)
        past = [msg("c_long", i, now - timedelta(days=730) + span * i) for i in range(history)]
        for start in range(0, len(past), 1000):
            messages.consume(past[start:start + 1000], deps=deps)
        messages.consume([msg("c_short", 0, now - timedelta(days=1))], deps=deps)

        def one_more(customer: str, n: int) -> float:
            began = time.perf_counter()
            messages.consume([msg(customer, n, now - timedelta(minutes=repeats - n % repeats))], deps=deps)
            return (time.perf_counter() - began) * 1000

        long_ms = statistics.median(one_more("c_long", history + i) for i in range(repeats))
        short_ms = statistics.median(one_more("c_short", 1 + i) for i in range(repeats))
    return {"long_ms": long_ms, "short_ms": short_ms}


def run(events: int = 20_000, runs: int = 3, history: int = 5000) -> dict[str, float]:
    """Run the benchmark ``runs`` times and print medians."""
    lines = events_for(events)
    typer.echo(f"loyalty benchmark: {len(lines):,} purchase and refund events, {runs} runs, embedded platform "
               "(broker, identity and loyalty processes as crm up runs them, SQLite)")
    results = []
    for i in range(runs):
        r = {**one_run(lines), **long_history(history)}
        results.append(r)
        typer.echo(f"  run {i + 1}: identity {r['identity_eps']:,.0f} events/s; loyalty {r['loyalty_eps']:,.0f} "
                   f"events/s ({r['entries_ps']:,.0f} ledger entries/s); ratio {r['ratio']:.2f}; one more purchase "
                   f"{r['long_ms']:.1f} ms with {history:,} before it, {r['short_ms']:.1f} ms with 1")
    med = {k: median([r[k] for r in results]) for k in results[0]}
    typer.echo(f"\nmedian of {runs} runs:")
    typer.echo(f"  ledger updates      {med['loyalty_eps']:,.0f} events/s ({med['entries_ps']:,.0f} ledger entries/s)")
    typer.echo(f"  identity            {med['identity_eps']:,.0f} events/s (same run, same events)")
    typer.echo(f"  loyalty / identity  {med['ratio']:.2f}")
    typer.echo(f"  one more purchase   {med['long_ms']:.1f} ms with {history:,} purchases of history, "
               f"{med['short_ms']:.1f} ms with 1 (x{med['long_ms'] / med['short_ms']:.1f})")
    return med
