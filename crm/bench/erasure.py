"""``crm bench erasure``: how long an erasure takes to reach ``done`` across the four services on the
embedded platform (issue 12).

One fresh embedded platform (``crm.bench.platform``): the four services, a generated scenario of
``customers`` people published through Kafka and drained; then ``samples`` customers are erased one
after another, each timed from ``POST /v1/customers/{id}/erasure`` to the moment
``GET /v1/erasures/{id}`` says ``done`` (every service confirmed through the broker).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time

import httpx
import typer

from crm.bench.platform import BENCH_KEY, bench_platform, median, percentile
from crm.replay import publish_lines
from crm.scenario import generate
from shared.contract import topics
from shared.storage.base import sqlite_path

SERVICES = ("identity", "loyalty", "alerts", "campaigns")


def _consumed(port: int, topic: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(rf'^crm_events_consumed_total{{topic="{re.escape(topic)}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def _wait(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def run(*, customers: int, samples: int) -> None:
    """Run the benchmark and print the time to ``done``."""
    with bench_platform() as p:
        for name in SERVICES:
            p.start(name)
        scenario = generate(customers, seed=7)
        lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in scenario.events]
        publish_lines(lines, p.settings)
        db = sqlite3.connect(sqlite_path(f"sqlite:///{p.data_dir}/crm.db", "identity"))
        valid = {(e["source"], e["id"]) for e in scenario.events if isinstance(e, dict) and "-bad-" not in e["id"]}

        def identity_done() -> bool:
            return db.execute("SELECT COUNT(*) FROM events").fetchone()[0] >= len(valid)

        _wait(identity_done, timeout=600, what="identity to resolve the scenario")
        resolved = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        for name in SERVICES[1:]:
            _wait(lambda n=name: _consumed(p.ports[n], topics.CUSTOMER_EVENTS) >= resolved, timeout=600,
                  what=f"{name} to consume every resolved event")
        ids = [r[0] for r in db.execute("SELECT id FROM records WHERE root_id = id ORDER BY id LIMIT ?", (samples,))]
        db.close()
        url = f"http://127.0.0.1:{p.ports['identity']}/v1"
        headers = {"Authorization": f"Bearer {BENCH_KEY}"}
        took: list[float] = []
        with httpx.Client(headers=headers, timeout=30) as client:
            for customer in ids:
                started = time.monotonic()
                r = client.post(f"{url}/customers/{customer}/erasure", json={"reason": "bench"})
                r.raise_for_status()
                erasure = f"{url}/erasures/{r.json()['erasure_id']}"
                while client.get(erasure).json()["status"] != "done":
                    if time.monotonic() - started > 120:
                        raise RuntimeError("an erasure was not done within 120 s")
                    time.sleep(0.02)
                took.append(time.monotonic() - started)
        typer.echo(f"erasure to done across the four services ({customers} customers, {len(took)} erasures): "
                   f"median {median(took):.2f} s, p90 {percentile(took, 90):.2f} s, max {max(took):.2f} s")
