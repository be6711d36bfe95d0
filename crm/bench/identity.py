"""``crm bench identity``: events/s through identity, publish→profile latency, and a bare faust baseline.

Per run, on a fresh embedded platform:

1. **Throughput.** The generated multi-channel scenario (mixed phone notations, WeChat and web ids
   bound to phones later, duplicates, malformed events) is published to the channel topics first;
   then identity starts and drains it. The rate is events handled (resolved, duplicates, dead
   letters) over the time from identity's first to its last announcement on its output topics.
2. **Baseline.** A bare faust agent that only counts drains the same topics from the same broker
   (``crm.bench.bare_agent``), timed the same way; the ratio is identity's rate over the bare rate.
3. **Latency.** With identity idle, new events are published at a steady rate; the latency of each
   is the time from its publish to the moment identity's announcement of the committed profile
   update (``crm.customer.events``, written after the commit) is read back.

Beside the rate, the CPU seconds identity's workers used per 1,000 events announced over the same window
(``/proc/PID/stat``): on a machine shared with other work the rate says how much CPU identity got, this
figure what each event costs.

Figures are medians over runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import typer
from kafka import KafkaConsumer

from crm.bench.platform import BenchPlatform, bench_platform, median, percentile
from crm.replay import publish_lines, topic_for
from crm.scenario import generate
from shared.contract import topics
from shared.streaming.kafka import Outgoing, Publisher
from shared.streaming.packs import carried


@dataclass
class RunFigures:
    events: int
    workers: int
    trace_ratio: float
    identity_rate: float
    identity_cpu_per_1k: float  # CPU s of identity's workers per 1,000 events announced while the rate is taken
    bare_rate: float
    p50_ms: float
    p99_ms: float


class Announcements:
    """Reads identity's output topics in a thread and notes when each event was announced."""

    def __init__(self, bootstrap: str) -> None:
        self.times: dict[str, float] = {}
        self.arrivals: list[float] = []
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(topics.CUSTOMER_EVENTS, topics.DEADLETTER, bootstrap_servers=bootstrap,
                                       auto_offset_reset="earliest", group_id=None, fetch_max_wait_ms=20)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self._consumer.poll(timeout_ms=50, max_records=5000).values():
                now = time.monotonic()
                for r in carried(records):
                    self.arrivals.append(now)
                    if r.topic == topics.CUSTOMER_EVENTS and b'"latency-' in r.value:
                        self.times[json.loads(r.value)["event"]["id"]] = now

    def wait(self, count: int, timeout: float) -> None:
        """Until ``count`` announcements have been read."""
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(self.arrivals)} of {count} announcements within {timeout:.0f} s")
            time.sleep(0.05)

    def count_since(self, moment: float) -> int:
        """Announcements read from ``moment`` on."""
        return sum(1 for t in self.arrivals if t >= moment)

    def rate_since(self, moment: float) -> float:
        """Announcements per second from ``moment`` (or the first one after it) to the last."""
        after = [t for t in self.arrivals if t >= moment]
        return (len(after) - 1) / max(1e-9, after[-1] - after[0]) if len(after) > 1 else 0.0

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


def _handled(lines: list[str]) -> int:
    """Messages identity announces for a scenario: one per valid event, duplicates excluded, plus dead letters."""
    seen, valid, bad = set(), 0, 0
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            bad += 1
            continue
        key = (event.get("source"), event.get("id"))
        if "-bad-" in str(event.get("id")):
            bad += 1
        elif key not in seen:
            seen.add(key)
            valid += 1
    return valid + bad


def _bare_rate(platform: BenchPlatform, expected: int) -> float:
    names = [platform.settings.topic(t) for t in topics.CHANNEL_TOPICS.values()]
    proc = subprocess.Popen([sys.executable, "-m", "crm.bench.bare_agent", platform.bootstrap, str(expected), *names],
                            stdout=subprocess.PIPE, stderr=open(platform.data_dir / "bare.log", "ab"), text=True,
                            env=platform.env)
    try:
        for line in proc.stdout or []:
            if '{"first"' in line:  # faust's spinner may precede it on the same line
                result = json.loads(line[line.index('{"first"'):])
                break
        else:
            raise RuntimeError("the bare agent exited without a result")
        return result["count"] / max(1e-9, result["last"] - result["first"])
    finally:
        proc.kill()
        proc.wait()


def _latency(platform: BenchPlatform, reader: Announcements, *, count: int, rate: float) -> list[float]:
    publisher = Publisher(platform.settings, client_id="bench-latency")
    sent: dict[str, float] = {}
    try:
        for i in range(count):
            due = time.monotonic()
            eid = f"latency-{i}"
            event = {"specversion": "1.0", "id": eid, "source": "pos/SH-001", "type": "crm.purchase",
                     "time": "2026-06-01T10:00:00+08:00",
                     "data": {"identity": {"phone": f"+86 139 {i // 10000:04d} {i % 10000:04d}"}, "order_id": eid,
                              "amount": "99.00", "currency": "CNY", "store_id": "SH-001"}}
            line = json.dumps(event)
            sent[eid] = time.monotonic()
            publisher.send([Outgoing(topic_for(line, platform.settings), line.encode())], timeout_s=30)
            time.sleep(max(0.0, due + 1 / rate - time.monotonic()))
    finally:
        publisher.close()
    deadline = time.monotonic() + 60
    while len(reader.times) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [(reader.times[e] - t) * 1000 for e, t in sent.items() if e in reader.times]


def tracing_env(ratio: float) -> dict[str, str]:
    """The OpenTelemetry sampler for a share of events traced (1: every event; the embedded default traces
    ``CRM_TRACE_RATIO``, 0.1, so the ratio is always given)."""
    return {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": str(ratio)}


def one_run(events: int, *, workers: int, trace_ratio: float, latency_events: int, latency_rate: float) -> RunFigures:
    """One run on a fresh platform."""
    from crm.bench.whole_platform import proc_cpu_s  # it imports this module's tracing_env

    people = max(10, events // 7)
    scenario = generate(people, events_per_person=5, malformed=min(50, events // 100), seed=int(time.time()))
    lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in scenario.events]
    expected = _handled(lines)
    with bench_platform() as platform:
        publish_lines(lines, platform.settings, batch=2000)
        bare = _bare_rate(platform, len(lines))
        reader = Announcements(platform.bootstrap)
        try:
            # With the backlog waiting, the first worker starts on it before the others join: the rate
            # is taken once every worker holds its partitions.
            settled = platform.start("identity", workers=workers, env=tracing_env(trace_ratio))
            pids = [proc.pid for worker, proc in platform.procs.items() if worker.split("-")[0] == "identity"]
            cpu0 = sum(proc_cpu_s(pid) for pid in pids)
            reader.wait(expected, timeout=900)
            cpu = sum(proc_cpu_s(pid) for pid in pids) - cpu0
            rate, drained = reader.rate_since(settled), reader.count_since(settled)
            latencies = _latency(platform, reader, count=latency_events, rate=latency_rate)
        finally:
            reader.close()
    return RunFigures(len(lines), workers, trace_ratio, rate, cpu / max(1, drained) * 1000, bare,
                      percentile(latencies, 50), percentile(latencies, 99))


def run(*, events: int = 50_000, runs: int = 3, workers: int = 2, trace_ratio: float = 1.0,
        latency_events: int = 3000, latency_rate: float = 500.0) -> None:
    """Run the benchmark and print the figures (medians over runs)."""
    figures = []
    for i in range(runs):
        f = one_run(events, workers=workers, trace_ratio=trace_ratio, latency_events=latency_events,
                    latency_rate=latency_rate)
        figures.append(f)
        typer.echo(f"run {i + 1}: {f.events} events  identity {f.identity_rate:,.0f} ev/s  "
                   f"(CPU s per 1,000 {f.identity_cpu_per_1k:.2f})  bare faust {f.bare_rate:,.0f} ev/s  "
                   f"ratio {f.identity_rate / f.bare_rate:.2f}  "
                   f"latency p50 {f.p50_ms:.0f} ms  p99 {f.p99_ms:.0f} ms")
    ident, bare = median([f.identity_rate for f in figures]), median([f.bare_rate for f in figures])
    typer.echo(f"\nidentity benchmark, median of {runs} runs of {figures[0].events:,} events "
               f"({workers} identity worker{'s' if workers > 1 else ''}, {trace_ratio:.0%} of events traced):")
    typer.echo(f"  through identity     {ident:,.0f} events/s, CPU s per 1,000 events "
               f"{median([f.identity_cpu_per_1k for f in figures]):.2f} (its workers together)")
    typer.echo(f"  bare faust agent     {bare:,.0f} events/s (one process; same broker, same events, same run)")
    typer.echo(f"  ratio                {median([f.identity_rate / f.bare_rate for f in figures]):.2f}")
    typer.echo(f"  latency publish → profile committed and announced, at {latency_rate:,.0f} events/s: "
               f"p50 {median([f.p50_ms for f in figures]):.0f} ms, p99 {median([f.p99_ms for f in figures]):.0f} ms")
