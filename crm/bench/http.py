"""``crm bench http``: identity's ingestion API offered twice what it can take, and what it does about it.

Per run, on a fresh embedded platform (``crm.bench.platform``; identity with two workers unless ``--workers``
says otherwise, the first serving the API):

1. **Capacity.** As many clients as the API handles ingestion requests at once post batches back to
   back (closed loop); capacity is events accepted per second.
2. **Overload.** Batches are then offered at twice that rate for ``seconds`` (open loop: each is sent at
   its scheduled moment whatever happened to the ones before, so a slow server cannot slow the offer
   down). Latency is counted from that moment to the answer, so time spent waiting for a free
   connection counts too. Answers are counted by status; every 429 and 503 must carry ``Retry-After``.
3. **Nothing lost.** Every event the API accepted (202) must reach identity's store: its ``events`` table
   is counted until it holds exactly the accepted number (or the deadline passes).
4. **Memory.** The resident set of identity's API process before the overload, half-way and at the end.

Figures are medians over runs.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import typer

from crm.bench.platform import BENCH_KEY, BenchPlatform, bench_platform, median, percentile
from shared.storage.base import sqlite_path

STATUSES = (202, 429, 503)


@dataclass
class RunFigures:
    capacity: float
    offered: float
    accepted_rate: float
    p50_ms: float
    p99_ms: float
    statuses: Counter
    missing_retry_after: int
    accepted: int
    stored: int
    rss_mb: tuple[float, float, float]
    client_lag_p99_ms: float
    errors: list[str] = field(default_factory=list)


class Batches:
    """Request bodies of ``size`` purchase events, each event with an id of its own."""

    def __init__(self, run: str, size: int) -> None:
        self.run, self.size, self.sent = run, size, 0

    def next(self) -> bytes:
        events = []
        for _ in range(self.size):
            i = self.sent
            self.sent += 1
            eid = f"http-{self.run}-{i}"
            events.append({"specversion": "1.0", "id": eid, "source": "pos/SH-001", "type": "crm.purchase",
                           "time": "2026-06-01T10:00:00+08:00",
                           "data": {"identity": {"phone": f"1365{i % 50_000 * 7919 % 10_000_000:07d}"}, "order_id": eid,
                                    "amount": "99.00", "currency": "CNY", "store_id": "SH-001"}})
        return json.dumps(events).encode()


def rss_mb(pid: int) -> float:
    """A process's resident set in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _accepted(response: httpx.Response) -> int:
    return response.json()["accepted"] if response.status_code in (202, 207) else 0


async def _capacity(client: httpx.AsyncClient, batches: Batches, *, clients: int, seconds: float) -> tuple[float, int]:
    """Events accepted per second by ``clients`` posting back to back; and how many were accepted."""
    accepted = 0
    deadline = time.monotonic() + seconds

    async def one() -> None:
        nonlocal accepted
        while time.monotonic() < deadline:
            r = await client.post("/v1/events", content=batches.next())
            accepted += _accepted(r)
            if r.status_code in (429, 503):
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))

    start = time.monotonic()
    await asyncio.gather(*(one() for _ in range(clients)))
    return accepted / (time.monotonic() - start), accepted


async def _overload(client: httpx.AsyncClient, batches: Batches, *, rate: float, seconds: float,
                    pid: int) -> tuple[list[float], Counter, int, int, float, list[str], list[float]]:
    """Offer ``rate`` events/s in batches for ``seconds``: latencies, statuses, missing Retry-After,
    events accepted, RSS half-way, errors the client saw, and how late the client itself sent."""
    latencies: list[float] = []
    lags: list[float] = []
    statuses: Counter = Counter()
    errors: list[str] = []
    accepted = missing = 0
    interval = batches.size / rate
    start = time.monotonic()
    middle_rss = 0.0

    async def send(due: float, body: bytes) -> None:
        nonlocal accepted, missing
        try:
            r = await client.post("/v1/events", content=body)
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
            return
        latencies.append((time.monotonic() - due) * 1000)
        statuses[r.status_code] += 1
        accepted += _accepted(r)
        if r.status_code in (429, 503) and "retry-after" not in r.headers:
            missing += 1

    tasks = []
    n = 0
    while (due := start + n * interval) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        lags.append((time.monotonic() - due) * 1000)
        tasks.append(asyncio.create_task(send(due, batches.next())))
        if not middle_rss and due >= start + seconds / 2:
            middle_rss = rss_mb(pid)
        n += 1
    await asyncio.gather(*tasks)
    return latencies, statuses, missing, accepted, middle_rss, errors, lags


def stored_events(platform: BenchPlatform) -> int:
    """Events in identity's store."""
    path = sqlite_path(platform.settings.resolved_store_url(), "identity")
    with sqlite3.connect(path, timeout=30) as db:
        return db.execute("SELECT count(*) FROM events").fetchone()[0]


def _wait_stored(platform: BenchPlatform, expected: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while (count := stored_events(platform)) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return count


def one_run(index: int, *, seconds: float, capacity_seconds: float, batch: int, workers: int,
            in_flight: int | None) -> RunFigures:
    """One run on a fresh platform."""
    with bench_platform() as platform:
        platform.start("identity", workers=workers,
                       env={"CRM_INGEST_MAX_IN_FLIGHT": str(in_flight)} if in_flight else None)
        pid = platform.procs["identity"].pid
        clients = in_flight or platform.settings.ingest_max_in_flight
        batches = Batches(f"{index}-{time.time_ns()}", batch)

        async def drive():
            # Few idle connections: one idle past the server's keep-alive timeout fails the request that reuses it.
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=16)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{platform.ports['identity']}", limits=limits,
                                         headers={"Authorization": f"Bearer {BENCH_KEY}",
                                                  "Content-Type": "application/json"},
                                         timeout=60) as client:
                capacity, warm = await _capacity(client, batches, clients=clients, seconds=capacity_seconds)
                start_rss = rss_mb(pid)
                result = await _overload(client, batches, rate=2 * capacity, seconds=seconds, pid=pid)
                return capacity, warm, start_rss, result

        capacity, warm, start_rss, (latencies, statuses, missing, accepted, middle_rss, errors, lags) = \
            asyncio.run(drive())
        end_rss = rss_mb(pid)
        stored = _wait_stored(platform, warm + accepted, timeout_s=180)
    return RunFigures(capacity, 2 * capacity, accepted / seconds, percentile(latencies, 50), percentile(latencies, 99),
                      statuses, missing, warm + accepted, stored, (start_rss, middle_rss, end_rss),
                      percentile(lags, 99), errors)


def run(*, seconds: float = 60, runs: int = 3, batch: int = 100, capacity_seconds: float = 15,
        workers: int = 2, in_flight: int | None = None) -> None:
    """Run the benchmark and print the figures (medians over runs)."""
    figures = []
    for i in range(runs):
        f = one_run(i, seconds=seconds, capacity_seconds=capacity_seconds, batch=batch, workers=workers,
                    in_flight=in_flight)
        figures.append(f)
        counts = "  ".join(f"{s}: {f.statuses.get(s, 0)}" for s in STATUSES)
        other = {s: c for s, c in f.statuses.items() if s not in STATUSES}
        typer.echo(f"run {i + 1}: capacity {f.capacity:,.0f} ev/s  offered {f.offered:,.0f} ev/s  "
                   f"accepted {f.accepted_rate:,.0f} ev/s  p50 {f.p50_ms:.0f} ms  p99 {f.p99_ms:.0f} ms  "
                   f"answers {counts}" + (f"  other {other}" if other else "")
                   + (f"  client errors {Counter(f.errors)}" if f.errors else "")
                   + f"  accepted {f.accepted:,} stored {f.stored:,}  "
                   f"RSS {f.rss_mb[0]:.0f}/{f.rss_mb[1]:.0f}/{f.rss_mb[2]:.0f} MB  "
                   f"client late p99 {f.client_lag_p99_ms:.0f} ms")
    lost = [f.accepted - f.stored for f in figures]
    typer.echo(f"\nHTTP ingestion benchmark, median of {runs} run{'s' if runs > 1 else ''}: batches of {batch} "
               f"events, {seconds:.0f} s at twice the measured capacity ({workers} identity workers):")
    typer.echo(f"  capacity (closed loop)  {median([f.capacity for f in figures]):,.0f} events/s")
    typer.echo(f"  offered                 {median([f.offered for f in figures]):,.0f} events/s")
    typer.echo(f"  accepted                {median([f.accepted_rate for f in figures]):,.0f} events/s")
    typer.echo(f"  latency of answers      p50 {median([f.p50_ms for f in figures]):.0f} ms, "
               f"p99 {median([f.p99_ms for f in figures]):.0f} ms (from each batch's scheduled moment; the "
               f"client itself sent p99 {median([f.client_lag_p99_ms for f in figures]):.0f} ms late)")
    for s in STATUSES:
        typer.echo(f"  answers {s}             {median([f.statuses.get(s, 0) for f in figures]):,.0f}")
    typer.echo(f"  429/503 without Retry-After  {sum(f.missing_retry_after for f in figures)}")
    typer.echo(f"  accepted but not stored {sum(max(0, x) for x in lost)} (stored beyond accepted: "
               f"{sum(max(0, -x) for x in lost)})")
    rss = [median([f.rss_mb[k] for f in figures]) for k in range(3)]
    typer.echo(f"  identity API RSS        start {rss[0]:.0f} MB, middle {rss[1]:.0f} MB, end {rss[2]:.0f} MB")
