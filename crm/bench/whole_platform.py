"""``crm bench platform``: the four services running together as ``crm up`` runs them, fed mixed channel events.

Per run, on a fresh embedded platform (``crm.bench.platform``: its own broker, topics and data dir):

1. **Start.** identity, loyalty, alerts and campaigns start as ``crm service NAME`` processes, with the
   workers ``crm up`` gives them (or ``--workers``), SQLite, and one event in ten traced as
   ``crm up`` does (``CRM_TRACE_RATIO``'s default; or ``--trace-ratio``).
   One profile event per customer of the base (``--customers``) is published and drained before any
   timing, so the stores hold the whole base when the timed phases start.
2. **Phases.** The same mix of channel events (purchases, refunds, profiles, page views, follows,
   surveys; CONTRACT.md section 1) is published at full speed, then at each offered load of ``--rates``.
   A phase lasts from its first publish until the last service is done with its last event:
   - identity is done when its workers' counters show every channel event published so far consumed,
     and no batch in flight (messages consumed == messages whose batch finished, ``crm_event_age_seconds``
     counts a message once its batch has committed and relayed its output);
   - then identity's ``crm_events_published_total`` for the customer-events topic is the exact number of
     resolved customer events; loyalty, alerts and campaigns are each done when their own counters show
     that many customer events consumed and no batch in flight.
   Counters are read from each worker's ``/metrics`` every 50 ms, so an end time is at most 50 ms late.
3. **Latency.** One event in ten carries a ``traceparent`` of the bench's own (sampled, so it is traced
   whatever ``--trace-ratio`` says). Its publish time is noted; identity's span for it, and each
   downstream service's span for the customer event it caused, carry that trace. A service is done with
   the event when the batch holding it ends (the batch span, linked from the message's span, closes after
   the store commit and the relay of its output). p50/p99 are of done minus publish, per service.
4. **Cost.** CPU seconds of each service's processes (``/proc/PID/stat``) over the phase, per 1,000
   events; peak RSS of each process (``VmHWM``) over the whole run.
5. **Bare pipeline** (``crm.bench.bare_pipeline``), once the services have stopped: the same topology on
   the same broker doing no work, fed the full-speed phase's events at full speed, timed the same way.

Figures are medians over the runs; the machine may be shared, so compare figures of one run.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import typer

from crm.bench.channel_mix import base_events, mixed_events
from crm.bench.platform import BenchPlatform, bench_platform, median, percentile
from crm.replay import topic_for
from shared.contract import topics
from shared.settings import Settings
from shared.streaming.kafka import Outgoing, Publisher, ensure_topics

SERVICES = ("identity", "loyalty", "alerts", "campaigns")
DOWNSTREAM = SERVICES[1:]
PROBE_EVERY = 10
POLL_S = 0.1  # each poll asks every worker for its /metrics page: a cost to the services measured
_TICK = 100  # /proc/PID/stat counts CPU time in clock ticks of 1/100 s on Linux


def publish(lines: list[str], settings: Settings, *, rate: float | None) -> tuple[float, dict[str, int]]:
    """Publish at full speed (``rate`` None) or paced at ``rate`` events/s; one event in ten is a probe.
    Returns the monotonic time of the first publish and each probe's trace id with its publish time (ns)."""
    publisher = Publisher(settings, client_id="bench-platform")
    probes: dict[str, int] = {}
    chunk = 2000 if rate is None else max(1, int(rate / 100))
    first = time.monotonic()
    try:
        start = 0
        while start < len(lines):
            end = start + chunk
            if rate is not None:
                time.sleep(max(0.0, first + start / rate - time.monotonic()))
                # Every event due by now goes out in this send: each send waits for the broker's
                # acknowledgement (12 to 40 ms on a busy machine), and a fixed hundredth of a second's
                # events per send offered 1,000/s as 400 to 700/s.
                end = max(end, int((time.monotonic() - first) * rate) + 1)
            out = []
            for i, line in enumerate(lines[start:end], start):
                headers = []
                if i % PROBE_EVERY == 0:
                    trace_id = secrets.token_hex(16)
                    headers = [("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01".encode())]
                    probes[trace_id] = time.time_ns()
                out.append(Outgoing(topic_for(line, settings), line.encode(), None, headers))
            publisher.send(out, timeout_s=60)
            start = end
    finally:
        publisher.close()
    return first, probes


def proc_cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def proc_peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Progress:
    """What the services' counters say: messages consumed per topic, and whether a batch is in flight."""

    consumed: dict[str, float] = field(default_factory=dict)
    published: dict[str, float] = field(default_factory=dict)
    idle: bool = True


def progress(platform: BenchPlatform, service: str) -> Progress:
    """The sum over a service's workers of its counters."""
    out = Progress()
    for worker in platform.procs:
        if worker.split("-")[0] != service:
            continue
        m = platform.metrics(worker)
        taken = 0.0
        for key, value in m.items():
            into = out.consumed if key.startswith("crm_events_consumed_total{") else \
                out.published if key.startswith("crm_events_published_total{") else None
            if into is not None:
                topic = key.split('topic="', 1)[1].split('"', 1)[0]
                into[topic] = into.get(topic, 0) + value
                taken += value if into is out.consumed else 0
        # Consumed counts a message as its batch starts, the age histogram once its batch is done.
        if not m or taken != m.get("crm_event_age_seconds_count", 0):
            out.idle = False
    return out


def wait_done(platform: BenchPlatform, *, channel_total: int, timeout_s: float) -> tuple[dict[str, float], dict]:
    """Poll the services until each is done with every event so far; the monotonic time each was done, and
    the counts: channel events identity consumed, customer events it resolved, and each other service took."""
    channel = [platform.settings.topic(t) for t in topics.CHANNEL_TOPICS.values()]
    customer_topic = platform.settings.topic(topics.CUSTOMER_EVENTS)
    done: dict[str, float] = {}
    counts: dict[str, int] = {}
    resolved = -1
    deadline = time.monotonic() + timeout_s
    while len(done) < len(SERVICES):
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"not done within {timeout_s:.0f} s: done {sorted(done)}; see {platform.data_dir}")
        for name in SERVICES:
            if name in done or (name != "identity" and resolved < 0):
                continue
            p = progress(platform, name)
            if name == "identity":
                taken = int(sum(p.consumed.get(t, 0) for t in channel))
                if p.idle and taken >= channel_total:
                    done[name], resolved = now, int(p.published.get(customer_topic, 0))
                    counts.update(channel=taken, resolved=resolved)
            elif p.idle and p.consumed.get(customer_topic, 0) >= resolved:
                done[name], counts[name] = now, int(p.consumed[customer_topic])
        time.sleep(POLL_S)
    return done, counts


@dataclass
class Batches:
    """What a service's workers did in a phase: batches handled, the messages they took and the wall time of
    those batches, handler and relay (the service's own counters). Small batches cost more per event; this
    says how small they were. The services' timers (loyalty's schedule, campaigns' scheduler, alerts' scans,
    the outbox sweep) run as batches of no message and are counted too."""

    count: int
    messages: int
    seconds: float

    def __sub__(self, before: Batches) -> Batches:
        return Batches(self.count - before.count, self.messages - before.messages, self.seconds - before.seconds)

    def text(self) -> str:
        n = max(self.count, 1)
        return f"{self.count:,} ({self.messages / n:,.0f}, {self.seconds / n * 1000:,.1f} ms)"


def _answered_metrics(platform: BenchPlatform, worker: str, timeout_s: float = 30.0) -> dict[str, float]:
    # A worker that did not answer in time reads as no metrics: a difference against it would be wrong.
    deadline = time.monotonic() + timeout_s
    while not (m := platform.metrics(worker)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{worker} gave no metrics for {timeout_s:.0f} s; see {platform.data_dir}")
        time.sleep(POLL_S)
    return m


def batches(platform: BenchPlatform) -> dict[str, Batches]:
    """Per service, the sum over its workers of batches handled, messages consumed and handler seconds."""
    out = {s: Batches(0, 0, 0.0) for s in SERVICES}
    for worker in platform.procs:
        m = _answered_metrics(platform, worker)
        taken = sum(v for k, v in m.items() if k.startswith("crm_events_consumed_total{"))
        b = out[worker.split("-")[0]]
        b.count += int(m.get("crm_handler_batch_seconds_count", 0))
        b.messages += int(taken)
        b.seconds += m.get("crm_handler_batch_seconds_sum", 0.0)
    return out


@dataclass
class Phase:
    name: str
    events: int
    eps: float
    cpu_per_1k: dict[str, float]
    counts: dict[str, int]
    p50: dict[str, float] = field(default_factory=dict)
    p99: dict[str, float] = field(default_factory=dict)
    probes: dict[str, int] = field(default_factory=dict)
    fell_back: dict[str, int] = field(default_factory=dict)  # probes timed to their message span, no batch span
    sent: int = 0
    batches: dict[str, Batches] = field(default_factory=dict)


def _spans(trace_file: Path, wanted: set[str]) -> list[dict]:
    # The batch spans and their store transactions (a message span links to its batch's transaction), and
    # the message spans of the probes' traces (a probe's own trace id), from the rotated files and the
    # current one; the other lines are skipped unparsed (a run writes many).
    files = sorted((p for p in trace_file.parent.glob(trace_file.name + ".*") if p.suffix[1:].isdigit()),
                   key=lambda p: -int(p.suffix[1:]))
    spans = []
    for file in [*files, trace_file]:
        if not file.exists():
            continue
        with file.open(encoding="utf-8") as f:
            for line in f:
                at = line.find('"trace_id":"') + 12
                if ' process batch"' in line or '.transaction"' in line or line[at:at + 32] in wanted:
                    spans.append(json.loads(line))
    return spans


def latencies(trace_file: Path, probes: dict[str, int]) -> tuple[dict[str, dict[str, float]], dict[str, set[str]]]:
    """Per service, milliseconds from each probe's publish to the end of the batch that handled it (its
    batch span: the store work, the commit and the relay); and per service the probes whose batch span is
    not in the file (yet), timed to their message span's end instead."""
    spans = _spans(trace_file, set(probes))
    batch_end = {s["span_id"]: s["end_ns"] for s in spans if s["name"].endswith(" process batch")}
    # A message span links to the store transaction it was handled in, beneath its batch's span.
    batch_end.update({s["span_id"]: batch_end[s["parent_id"]] for s in spans
                      if s["name"].endswith(".transaction") and s["parent_id"] in batch_end})
    inputs = {**{f"identity process {t}": "identity" for t in topics.CHANNEL_TOPICS.values()},
              **{f"{s} process {topics.CUSTOMER_EVENTS}": s for s in DOWNSTREAM}}
    done: dict[str, dict[str, float]] = {s: {} for s in SERVICES}
    fell_back: dict[str, set[str]] = {s: set() for s in SERVICES}
    for s in spans:
        service = inputs.get(s["name"])
        if service is None or s["trace_id"] not in probes:
            continue
        ends = [batch_end[link["span_id"]] for link in s.get("links") or [] if link["span_id"] in batch_end]
        if not ends:
            fell_back[service].add(s["trace_id"])
        ms = (max([*ends, s["end_ns"]]) - probes[s["trace_id"]]) / 1e6
        done[service][s["trace_id"]] = max(ms, done[service].get(s["trace_id"], ms))
    return done, fell_back


def settle_latencies(trace_file: Path, phases: list[Phase], probes: list[dict[str, int]]) -> None:
    """Fill in each phase's p50/p99 per service from the span file, once the services have written the
    probes' spans (they write in batches every few seconds). A probe is done in a service when the batch
    holding it is: the end of that batch's span (sampled whenever it holds a traced event, as every probe
    is). A probe whose batch span never came is timed to its own message span's end and counted in
    ``Phase.fell_back``."""
    every = {t: ns for sent in probes for t, ns in sent.items()}
    deadline, progress = time.monotonic() + 30, None
    while True:
        got, fell_back = latencies(trace_file, every)
        found, missing = sum(len(v) for v in got.values()), sum(len(v) for v in fell_back.values())
        if (found == len(every) * len(SERVICES) and not missing) or time.monotonic() > deadline \
                or (found, missing) == progress:
            break
        progress = found, missing
        time.sleep(6)
    for phase, sent in zip(phases, probes, strict=True):
        mine = {s: [ms for t, ms in got[s].items() if t in sent] for s in SERVICES}
        phase.probes = {s: len(v) for s, v in mine.items()}
        phase.fell_back = {s: len(fell_back[s] & sent.keys()) for s in SERVICES}
        phase.p50 = {s: percentile(v, 50) if v else float("nan") for s, v in mine.items()}
        phase.p99 = {s: percentile(v, 99) if v else float("nan") for s, v in mine.items()}
        phase.sent = len(sent)


def run_phase(platform: BenchPlatform, lines: list[str], *, name: str, rate: float | None,
              channel_total: int) -> tuple[Phase, dict[str, int]]:
    """Publish one phase's events and wait until every service is done with them."""
    pids = {w: p.pid for w, p in platform.procs.items()}
    cpu0 = {w: proc_cpu_s(pid) for w, pid in pids.items()}
    batches0 = batches(platform)
    first, probes = publish(lines, platform.settings, rate=rate)
    done, counts = wait_done(platform, channel_total=channel_total, timeout_s=max(300, len(lines) / 50))
    cpu = {s: sum(proc_cpu_s(pid) - cpu0[w] for w, pid in pids.items() if w.split("-")[0] == s) for s in SERVICES}
    handled = {s: b - batches0[s] for s, b in batches(platform).items()}
    eps = len(lines) / max(1e-9, max(done.values()) - first)
    return Phase(name, len(lines), eps, {s: cpu[s] / len(lines) * 1000 for s in SERVICES}, counts,
                 batches=handled), probes


class BareRun:
    """The bare pipeline's processes on one broker, and the counts they print."""

    def __init__(self, platform: BenchPlatform, workers: dict[str, int]) -> None:
        self.settings = Settings(_env_file=None, kafka_bootstrap=platform.bootstrap, topic_prefix="bare.",
                                 data_dir=str(platform.data_dir / "bare"))
        ensure_topics(self.settings)
        Path(self.settings.data_dir).mkdir(exist_ok=True)
        self.reports: list[dict] = []
        self.taken: dict[str, dict[int, int]] = {role: {} for role in SERVICES}  # role -> pid -> latest count
        self.procs, self.roles = [], []
        self.cpu_per_1k: dict[str, float] = {}
        for role in SERVICES:
            for _ in range(workers[role]):
                self.roles.append(role)
                proc = subprocess.Popen([sys.executable, "-m", "crm.bench.bare_pipeline", role, platform.bootstrap,
                                         "bare.", str(platform.data_dir / "bare")], stdout=subprocess.PIPE,
                                        stderr=open(platform.data_dir / "bare.log", "ab"),  # noqa: SIM115
                                        text=True, env=platform.env, start_new_session=True)
                self.procs.append(proc)
                threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout or []:
            if '{"role"' in line:  # faust's spinner may precede it on the same line
                report = json.loads(line[line.index('{"role"'):])
                self.reports.append(report)
                self.taken[report["role"]][report["pid"]] = report["in"]

    def reached(self, role: str, total: int) -> float | None:
        """When the role's workers together had taken ``total`` messages in (their own clocks), if they have."""
        if sum(self.taken[role].values()) < total:  # not yet: no need to order the reports (polled 20 times a second)
            return None
        latest: dict[int, int] = {}
        for r in sorted((r for r in list(self.reports) if r["role"] == role), key=lambda r: r["t"]):
            latest[r["pid"]] = r["in"]
            if sum(latest.values()) >= total:
                return r["t"]
        return None

    def feed(self, lines: list[str], *, total: int, timeout_s: float) -> float:
        """Publish ``lines`` at full speed; events/s until every stand-in has consumed ``total`` events.
        ``cpu_per_1k`` holds each role's CPU seconds per 1,000 of these events."""
        cpu0 = {p.pid: proc_cpu_s(p.pid) for p in self.procs}
        first, _ = publish(lines, self.settings, rate=None)
        deadline = time.monotonic() + timeout_s
        while None in (ends := [self.reached(role, total) for role in SERVICES]):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"bare pipeline not done within {timeout_s:.0f} s or a worker exited; "
                                   "see bare.log")
            time.sleep(0.05)
        used = {role: 0.0 for role in SERVICES}
        for proc, role in zip(self.procs, self.roles, strict=True):
            used[role] += proc_cpu_s(proc.pid) - cpu0[proc.pid]
        self.cpu_per_1k = {role: used[role] / len(lines) * 1000 for role in SERVICES}
        return len(lines) / max(1e-9, max(ends) - first)

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


@dataclass
class RunFigures:
    phases: list[Phase]
    bare_eps: float
    rss_mb: dict[str, float]
    published: int  # channel events in all, the base included
    bare_cpu_per_1k: dict[str, float]


def one_run(*, events: int, customers: int, rates: list[float], workers: dict[str, int], trace_ratio: float,
            seed: int, load_seconds: float) -> RunFigures:
    """One run on a fresh platform: base, phases, then the bare pipeline."""
    full = mixed_events(events, customers=customers, tag=f"full{seed}", seed=seed)
    with bench_platform() as platform:
        platform.env["CRM_TRACE_FILE_MAX_MB"] = "4096"  # the latency figures read the whole run's spans
        # CRM_TRACE_RATIO's sampler, as `crm up` runs: it also traces the batch holding a traced event
        env = {"CRM_TRACE_RATIO": str(trace_ratio)}
        launched = {s: platform.launch(s, workers=workers[s], env=env) for s in SERVICES}
        for s, names in launched.items():
            platform.wait_assigned(s, names)
        base = base_events(customers)
        total = len(base)
        publish(base, platform.settings, rate=None)
        wait_done(platform, channel_total=total, timeout_s=max(300, customers / 50))
        phases, probes = [], []
        for name, rate, lines in [("full speed", None, full),
                                  *[(f"{r:,.0f}/s", r, mixed_events(min(events, int(r * load_seconds)),
                                                                     customers=customers, tag=f"r{r:g}x{seed}",
                                                                     seed=seed + int(r))) for r in rates]]:
            total += len(lines)
            phase, sent = run_phase(platform, lines, name=name, rate=rate, channel_total=total)
            phases.append(phase)
            probes.append(sent)
        settle_latencies(Path(platform.env["CRM_TRACE_FILE"]), phases, probes)
        rss = {w: proc_peak_rss_mb(p.pid) for w, p in platform.procs.items()}
        if platform.broker_pid is not None:
            rss["broker"] = proc_peak_rss_mb(platform.broker_pid)
        platform.stop()
        bare = BareRun(platform, workers)
        try:
            warm = mixed_events(200, customers=customers, tag=f"warm{seed}", seed=seed + 1)
            bare.feed(warm, total=len(warm), timeout_s=180)  # the stand-ins join their groups first
            bare_eps = bare.feed(full, total=len(warm) + len(full), timeout_s=max(300, events / 50))
        finally:
            bare.stop()
    return RunFigures(phases, bare_eps, rss, total, bare.cpu_per_1k)


def _latency_text(phase: Phase) -> str:
    return "  ".join(f"{s} {phase.p50[s]:.0f}/{phase.p99[s]:.0f}" for s in SERVICES)


def parse_workers(text: str) -> dict[str, int]:
    """``identity=2,loyalty=1`` over the defaults of ``crm up``."""
    settings = Settings(_env_file=None)
    workers = {s: settings.workers_of(s) for s in SERVICES}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, n = part.partition("=")
        if name not in workers or not n.isdigit() or int(n) < 1:
            raise typer.BadParameter(f"{part!r}: expected SERVICE=N with SERVICE one of {', '.join(SERVICES)}")
        workers[name] = int(n)
    return workers


def run(*, events: int = 30_000, runs: int = 3, rates: list[float] | None = None, workers: dict[str, int] | None = None,
        customers: int = 5000, trace_ratio: float = 0.1, load_seconds: float = 20.0) -> list[RunFigures]:
    """Run the benchmark and print each run's figures and the medians."""
    rates = [500.0, 1000.0] if rates is None else rates
    workers = workers or parse_workers("")
    shape = ", ".join(f"{s} {n}" for s, n in workers.items())
    loads = f", then {', '.join(f'{r:,.0f}/s' for r in rates)} offered for up to {load_seconds:.0f} s each" \
        if rates else ""
    typer.echo(f"platform benchmark: {events:,} mixed channel events at full speed{loads}; "
               f"{customers:,} customers; workers {shape}; {trace_ratio:.0%} of events traced")
    typer.echo("  latency p50/p99 ms: publish -> the service's batch holding the event committed and relayed, the "
               f"end of that batch's span (1 event in {PROBE_EVERY}, traced)")
    results = []
    for i in range(runs):
        r = one_run(events=events, customers=customers, rates=rates, workers=workers, trace_ratio=trace_ratio,
                    seed=1000 + i, load_seconds=load_seconds)
        results.append(r)
        for phase in r.phases:
            cpu = " ".join(f"{s} {phase.cpu_per_1k[s]:.2f}" for s in SERVICES)
            typer.echo(f"run {i + 1} {phase.name:>10}: {phase.events:,} events  {phase.eps:,.0f} ev/s  "
                       f"latency {_latency_text(phase)}  CPU s/1k {cpu}")
            typer.echo(f"run {i + 1} {phase.name:>10}: batches, timer runs included (messages, wall ms each) "
                       + "  ".join(f"{s} {phase.batches[s].text()}" for s in SERVICES))
            if any(phase.fell_back.values()):
                typer.echo(f"run {i + 1} {phase.name:>10}: probes without their batch span, timed to their own span "
                           "instead: " + " ".join(f"{s} {phase.fell_back[s]}/{phase.probes[s]}" for s in SERVICES))
        typer.echo(f"run {i + 1}       bare: {r.bare_eps:,.0f} ev/s  platform/bare {r.phases[0].eps / r.bare_eps:.2f}  "
                   "bare CPU s/1k " + " ".join(f"{s} {r.bare_cpu_per_1k[s]:.2f}" for s in SERVICES)
                   + "  peak RSS MB " + " ".join(f"{w} {mb:.0f}" for w, mb in r.rss_mb.items()))
        c = r.phases[-1].counts
        typer.echo(f"run {i + 1}   accounts: {r.published:,} channel events published, identity consumed "
                   f"{c['channel']:,} and resolved {c['resolved']:,}; consumed by "
                   + ", ".join(f"{s} {c[s]:,}" for s in DOWNSTREAM))
    typer.echo(f"\nplatform benchmark, median of {runs} run{'s' if runs > 1 else ''}:")
    for k, phase in enumerate(results[0].phases):
        def med(get, k=k):
            return median([get(r.phases[k]) for r in results])
        lat = "  ".join(f"{s} {med(lambda p, s=s: p.p50[s]):.0f}/{med(lambda p, s=s: p.p99[s]):.0f}"
                        for s in SERVICES)
        typer.echo(f"  {phase.name:>10}  {med(lambda p: p.eps):,.0f} events/s through all four services; "
                   f"p50/p99 ms {lat}")
        typer.echo(" " * 14 + "CPU s per 1,000 events " + "  ".join(
            f"{s} {med(lambda p, s=s: p.cpu_per_1k[s]):.2f}" for s in SERVICES))
    bare = median([r.bare_eps for r in results])
    typer.echo(f"  bare pipeline {bare:,.0f} events/s (same topology, no work; same broker, same events, same run)")
    typer.echo("                CPU s per 1,000 events " + "  ".join(
        f"{s} {median([r.bare_cpu_per_1k[s] for r in results]):.2f}" for s in SERVICES))
    typer.echo(f"  platform/bare {median([r.phases[0].eps / r.bare_eps for r in results]):.2f}")
    workers_rss = sorted({w for r in results for w in r.rss_mb})
    typer.echo("  peak RSS MB   " + "  ".join(f"{w} {median([r.rss_mb.get(w, 0) for r in results]):.0f}"
                                             for w in workers_rss))
    return results
