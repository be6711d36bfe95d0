"""CPU seconds per 1,000 channel events of one downstream service's consume path, in process (issue 13).

``record``: the ``crm bench platform`` channel mix (one profile per customer of the base, then mixed
events) is run through identity, loyalty, alerts and campaigns in this process, each service built by
its own ``create_app`` on a temp SQLite store with a fixed clock, their outboxes routed by topic to the
consumers that declare them, batches of 100; what each service consumed (identity: the channel lines and
the view parts) is kept in a file.
``measure``: a fresh service is fed the recorded base (untimed), then the recorded mixed phase through
its agent's handler and ``BatchRunner.run_sync`` (commit, relay to a no-op publisher), timed with
``time.process_time``; printed per 1,000 mixed channel events. Only the measured service's code runs in
the timed part, so code versions can be compared on one recording (``PYTHONPATH`` at another checkout).

    python -m crm.bench.consume_path record /tmp/rec.pkl --customers 2000 --events 6000
    python -m crm.bench.consume_path record /tmp/imp.pkl --members 5000   # an import's events instead
    python -m crm.bench.consume_path measure identity|loyalty|alerts|campaigns /tmp/rec.pkl --runs 3 \
        [--batch 100] [--profile 30]

``--members N``: the mixed phase is instead what ``crm import members`` publishes for N generated members
(``crm bench import``'s files: profiles, consents, tiers and points lots), on an empty base.

``--trace-ratio 0.1`` measures with tracing as ``crm up`` runs it: the SDK installed (spans to a temp file),
each message carrying a trace context sampled upstream at that ratio (fixed seed).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import os
import pickle
import pstats
import random
import statistics
import tempfile
import time
from collections import defaultdict, deque
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry import trace

from crm.bench.channel_mix import base_events, mixed_events
from crm.replay import topic_for
from shared.settings import Settings
from shared.streaming.batch import Incoming
from shared.streaming.runner import settle_heap

AS_OF = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)
ORDER = ("identity", "loyalty", "alerts", "campaigns")
KEPT = ("identity", "loyalty", "alerts", "campaigns")


def _service(name: str, data_dir: str, publish):
    app = importlib.import_module(f"services.{name}.app")
    service = app.create_app(Settings(_env_file=None, data_dir=data_dir), publish=publish, clock=lambda: AS_OF)
    service.faust_app()  # registers its agents, which declare what they consume
    # A topic may feed several agents of one service: each takes every message of it.
    by_topic: dict[str, list] = defaultdict(list)
    for _, names, h in service.runner.consumers:
        for t in names:
            by_topic[t].append(h)
    return service, by_topic


def record(path: Path, *, customers: int, events: int, batch: int = 100, members: int = 0) -> dict[str, int]:
    """Run the mix (or an import of ``members``) through the four services; keep what each consumed, by
    phase."""
    data_dir = tempfile.mkdtemp(prefix="crm-consume-rec-")
    queues: dict[str, deque] = defaultdict(deque)
    kept: dict[str, list] = {name: [] for name in KEPT}
    phase, offset, handles, services = ["base"], [0], {}, {}

    def publish(messages) -> None:
        for m in messages:
            for name, by_topic in handles.items():
                if m.topic in by_topic:
                    offset[0] += 1
                    queues[name].append(Incoming(m.value, m.topic, 0, offset[0], list(m.headers), m.key))
                    if name in kept:  # with the headers naming what a message is (not its trace context)
                        kept[name].append((phase[0], m.topic, m.value, m.key, _named(m.headers)))

    for name in ORDER:
        services[name], handles[name] = _service(name, data_dir, publish)

    def feed(lines: list[str]) -> None:
        settings = services["identity"].settings
        for line in lines:
            offset[0] += 1
            topic = topic_for(line, settings)
            queues["identity"].append(Incoming(line.encode(), topic, 0, offset[0]))
            kept["identity"].append((phase[0], topic, line.encode(), None, []))
        while any(queues[name] for name in ORDER):
            for name in ORDER:
                while queues[name]:
                    chunk = [queues[name].popleft() for _ in range(min(batch, len(queues[name])))]
                    by_topic: dict[str, list] = defaultdict(list)
                    for one in chunk:
                        by_topic[one.topic].append(one)
                    for topic, items in by_topic.items():
                        for handle in handles[name][topic]:
                            services[name].runner.run_sync(handle, items)

    if members:
        phase[0] = "mix"
        feed(import_lines(members, services["identity"].settings))
    else:
        feed(base_events(customers))
        phase[0] = "mix"
        feed(mixed_events(events, customers=customers, tag="consume", seed=7))
    path.write_bytes(pickle.dumps(kept))
    return {name: len(v) for name, v in kept.items()}


def import_lines(members: int, settings: Settings) -> list[str]:
    """What ``crm import members`` publishes for ``members`` generated members, in its order, with the import
    started at the recording's fixed moment."""
    from dataclasses import replace

    from crm.bench.imports import write_members
    from crm.imports import identity_deps
    from services.identity.handlers import imports

    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="crm-consume-import-") as tmp:
        files = write_members(Path(tmp), members, today=AS_OF.date())[:2]
        deps = replace(identity_deps(settings.model_copy(update={"data_dir": tmp})), clock=lambda: AS_OF)
        job = imports.start("members", {"members": str(files[0]), "points": str(files[1])}, options={}, by="bench",
                            origin="cli", deps=deps)
        job = imports.run(job.job_id, deps=deps, chunk_rows=2000,
                          publish=lambda messages: lines.extend(m.value.decode() for m in messages))
    if job.status != "done":
        raise RuntimeError(f"the import ended {job.status}")
    return lines


def _named(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in headers if k.startswith("crm.")]


def traced(ratio: float, count: int) -> list[list[tuple[str, bytes]]]:
    """Tracing as ``crm up`` runs it (once per process); each message's trace headers, sampled upstream at
    ``ratio`` as identity's ingestion does."""
    from shared.observability.telemetry import setup_tracing

    os.environ.setdefault("CRM_TRACE_FILE", str(Path(tempfile.mkdtemp(prefix="crm-consume-trace-")) / "t.jsonl"))
    setup_tracing("bench", Settings(_env_file=None, trace_ratio=ratio))
    rng = random.Random(13)
    return [[("traceparent", f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-"
                             f"{'01' if rng.random() < ratio else '00'}".encode())] for _ in range(count)]


def measure(name: str, path: Path, *, batch: int = 100, profile: int = 0, trace_ratio: float | None = None) -> float:
    """One run: CPU seconds per 1,000 mixed channel events of ``name``'s consume path over the recording."""
    rows = pickle.loads(path.read_bytes())[name]
    headers = traced(trace_ratio, len(rows)) if trace_ratio is not None else [[] for _ in rows]
    # Identity's unit is a channel line it resolves; downstream, a customer event it published.
    unit = ".channel." if name == "identity" else "customer.events"
    events = sum(1 for ph, topic, *_ in rows if ph == "mix" and unit in topic)
    gc.unfreeze()  # an earlier run's service is garbage now
    service, _ = _service(name, tempfile.mkdtemp(prefix="crm-consume-"), lambda messages: None)
    settle_heap()  # as ``crm up`` runs a service, once it is built

    def run(phase: str) -> None:
        # A recording made before messages carried named headers (issue 13) has rows of four.
        messages = [Incoming(row[2], row[1], 0, i, [*(row[4] if len(row) > 4 else ()), *headers[i]], row[3])
                    for i, row in enumerate(rows) if row[0] == phase]
        # Each agent takes full batches of its own topics, as it would under load.
        for _, names, handle in service.runner.consumers:
            mine = [m for m in messages if m.topic in names]
            for start in range(0, len(mine), batch):
                service.runner.run_sync(handle, mine[start:start + batch])

    run("base")
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    if profiler:
        profiler.enable()
    run("mix")
    if trace_ratio is not None:
        trace.get_tracer_provider().force_flush()  # the spans of this run written, in its time
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(profile)
    return cpu / events * 1000


def main() -> None:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="python -m crm.bench.consume_path")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("path", type=Path)
    rec.add_argument("--customers", type=int, default=2000)
    rec.add_argument("--events", type=int, default=6000)
    rec.add_argument("--members", type=int, default=0, help="record an import of this many members instead")
    mes = sub.add_parser("measure")
    mes.add_argument("service", choices=KEPT)
    mes.add_argument("path", type=Path)
    mes.add_argument("--runs", type=int, default=3)
    mes.add_argument("--batch", type=int, default=100)
    mes.add_argument("--profile", type=int, default=0, help="print this many cProfile rows of the last run")
    mes.add_argument("--trace-ratio", type=float, default=None, help="trace as crm up does, this share sampled")
    args = parser.parse_args()
    if args.command == "record":
        print(record(args.path, customers=args.customers, events=args.events, members=args.members))
        return
    figures = [measure(args.service, args.path, batch=args.batch, profile=args.profile if i == args.runs - 1 else 0,
                       trace_ratio=args.trace_ratio) for i in range(args.runs)]
    traced_as = "" if args.trace_ratio is None else f", {args.trace_ratio:.0%} traced"
    print(f"{args.service}: CPU s per 1,000 events, batches of {args.batch}{traced_as}: runs "
          f"{', '.join(f'{f:.3f}' for f in figures)}; median {statistics.median(figures):.3f}")


if __name__ == "__main__":
    main()
