"""``crm bench loyalty``: ledger updates per second through the embedded platform, against identity's
own rate measured in the same run.

Each run starts a fresh broker and data directory, publishes purchases and refunds to the channel
topics, and lets identity resolve them alone (identity's rate: events per second from its first to
its last event). Then loyalty starts on identity's output backlog (loyalty's rate: purchase and refund
events kept and settled per second, and ledger entries written per second, from its first to its last
fact). Rates are medians over the runs; the ratio is loyalty's events/s over identity's events/s.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import httpx
import typer

from crm.broker import free_port, start_broker
from crm.replay import publish_lines
from shared.kafka import ensure_topics
from shared.settings import Settings


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
    import sqlite3

    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=30)
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
            first = time.perf_counter()
        if n >= total:
            return time.perf_counter() - (first or time.perf_counter()), n
        time.sleep(0.02)
    raise SystemExit(f"not finished within {timeout_s:.0f} s ({count()} of {total})")


def _start(name: str, env: dict[str, str], data: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = open(data / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen([sys.executable, "-m", "crm.cli", "service", name, "--port", str(port)], env=env,
                            stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited at start; see {data / (name + '.log')}")
        time.sleep(0.1)
    raise SystemExit(f"{name} not ready in 90 s")


def one_run(lines: list[str], *, facts: int) -> dict[str, float]:
    """One run on a fresh broker and data directory."""
    data = Path(tempfile.mkdtemp(prefix="crm-bench-loyalty-"))
    port = free_port()
    broker = start_broker(port, log_path=data / "broker.log")
    procs: list[subprocess.Popen] = []
    try:
        bootstrap = f"127.0.0.1:{port}"
        settings = Settings(_env_file=None, kafka_bootstrap=bootstrap, data_dir=str(data))
        ensure_topics(settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "OTEL_"))}
        env.update(CRM_KAFKA_BOOTSTRAP=bootstrap, CRM_DATA_DIR=str(data), CRM_API_KEYS="bench:admin",
                   CRM_PSEUDONYM_SECRET="bench-pseudonym-secret-0123456789", CRM_LOG_LEVEL="WARNING",
                   OTEL_TRACES_EXPORTER="none", CRM_LOYALTY_EXPIRY_MODE="never")
        identity, _ = _start("identity", env, data)
        procs.append(identity)
        publish_lines(lines, settings)
        id_db = data / "crm.identity.db"
        id_s, id_n = _window(lambda: _count(id_db, "SELECT (SELECT COUNT(*) FROM events)"
                                                   " + (SELECT COUNT(*) FROM dead_letters)"), len(lines), timeout_s=600)
        loyalty, _ = _start("loyalty", env, data)
        procs.append(loyalty)
        loy_db = data / "crm.loyalty.db"
        loy_s, loy_n = _window(lambda: _count(loy_db, "SELECT (SELECT COUNT(*) FROM purchases)"
                                                      " + (SELECT COUNT(*) FROM refunds)"), facts, timeout_s=600)
        entries = _count(loy_db, "SELECT COUNT(*) FROM ledger")
        return {"identity_eps": id_n / id_s, "loyalty_eps": loy_n / loy_s, "ledger_entries_ps": entries / loy_s,
                "entries": entries}
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        broker.kill()
        shutil.rmtree(data, ignore_errors=True)


def run(events: int = 20_000, runs: int = 3) -> dict[str, float]:
    """Run the benchmark ``runs`` times and print medians."""
    lines = events_for(events)
    facts = len(lines)
    typer.echo(f"loyalty benchmark: {facts} purchase and refund events, {runs} runs, embedded platform "
               f"(broker + identity + loyalty processes, SQLite)")
    results = []
    for i in range(runs):
        r = one_run(lines, facts=facts)
        results.append(r)
        typer.echo(f"  run {i + 1}: identity {r['identity_eps']:,.0f} events/s; loyalty {r['loyalty_eps']:,.0f} "
                   f"events/s, {r['ledger_entries_ps']:,.0f} ledger entries/s; ratio "
                   f"{r['loyalty_eps'] / r['identity_eps']:.2f}")
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    ratio = statistics.median(r["loyalty_eps"] / r["identity_eps"] for r in results)
    typer.echo(f"median over {runs} runs: ledger updates {med['loyalty_eps']:,.0f} events/s "
               f"({med['ledger_entries_ps']:,.0f} entries/s); identity {med['identity_eps']:,.0f} events/s; "
               f"loyalty/identity ratio {ratio:.2f}")
    return {**med, "ratio": ratio}
