"""Faults a running platform meets: a huge event among good ones, a broker that stops answering, a full
disk, a locked database file, a service killed in the middle of an HTTP batch. In each case no accepted
event is lost or counted twice, ``/readyz`` says why while nothing moves, and the service resumes by
itself."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer

from crm.broker import free_port, start_broker
from shared.settings import Settings
from shared.storage.base import sqlite_path
from shared.streaming.kafka import ensure_topics
from tests.conftest import Stack, wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ADMIN = {"Authorization": "Bearer test-admin"}
# Short bounds so each fault shows within seconds: a publish waits 2 s for its acknowledgement, and
# retrying one failure for 3 s makes the service unready.
FAST = {"CRM_PUBLISH_TIMEOUT_S": "2", "CRM_STALL_AFTER_S": "3"}


def purchases(run: str, first: int, count: int) -> list[dict]:
    """Purchases by distinct members: each event makes one customer with one purchase."""
    now = datetime.now(UTC).isoformat()
    return [{"specversion": "1.0", "id": f"{run}-{n}", "source": "pos/SH-001", "type": "crm.purchase", "time": now,
             "data": {"identity": {"member_id": f"M-{run}-{n}"}, "order_id": f"o-{run}-{n}", "amount": "10.00",
                      "currency": "CNY", "store_id": "SH-001"}}
            for n in range(first, first + count)]


class Identity:
    """One identity service process with its API, and what its SQLite file holds."""

    def __init__(self, stack: Stack, db: Path, **env: str) -> None:
        self.stack, self.db = stack, db
        stack.env.update(FAST, **env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = stack.start_service("identity", api_port=self.port)

    def restart(self) -> None:
        self.proc = self.stack.start_service("identity", api_port=self.port, log_name="identity-2")

    def post(self, events: list[dict], timeout: float = 15) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/events", json=events, headers=ADMIN, timeout=timeout)

    def post_until_accepted(self, events: list[dict], timeout: float = 40) -> None:
        """What a client does after a 503 or a lost connection: send the batch again until it is taken."""
        def accepted() -> bool:
            try:
                return self.post(events).status_code == 202
            except httpx.HTTPError:
                return False
        wait_for(accepted, timeout=timeout, interval=0.5, what="the batch accepted")

    def ready(self) -> httpx.Response:
        return httpx.get(f"{self.url}/readyz", timeout=5)

    def count(self, run: str) -> tuple[int, int, int]:
        """(events, purchases, member identifiers) of this run in identity's store."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as conn:
            like = (f"{run}-%",)
            return (conn.execute("SELECT COUNT(*) FROM events WHERE id LIKE ?", like).fetchone()[0],
                    conn.execute("SELECT COUNT(*) FROM purchases WHERE id LIKE ?", like).fetchone()[0],
                    # Identifier values are sealed at rest (found by pseudonym): count those the run's events
                    # brought in, by the event that first saw them.
                    conn.execute("SELECT COUNT(*) FROM identifiers WHERE type = 'member_id' AND event_id LIKE ?",
                                 like).fetchone()[0])

    def wait_counted(self, run: str, n: int, timeout: float = 40) -> None:
        wait_for(lambda: self.count(run) == (n, n, n), timeout=timeout, what=f"{n} events of the run stored")

    def unready_because(self, reason: str) -> bool:
        r = self.ready()
        return r.status_code == 503 and r.json()["checks"]["progress"] == f"failing: {reason}"


def default_db(stack: Stack) -> Path:
    return sqlite_path(f"sqlite:///{stack.data_dir}/crm.db", "identity")


@pytest.fixture
def pausable(tmp_path: Path):
    """A stack whose broker process the test may pause (SIGSTOP) and resume."""
    port = free_port()
    broker = start_broker(port, log_path=tmp_path / "broker.log")
    bootstrap = f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "OTEL_"))}
    env.update({"CRM_KAFKA_BOOTSTRAP": bootstrap, "CRM_DATA_DIR": str(tmp_path),
                "CRM_API_KEYS": "test-admin:admin", "CRM_PSEUDONYM_SECRET": "test-secret-of-sufficient-length",
                "CRM_TRACE_FILE": str(tmp_path / "traces.jsonl"), "PYTHONPATH": str(Path(__file__).parents[2])})
    ensure_topics(Settings(_env_file=None, kafka_bootstrap=bootstrap, data_dir=str(tmp_path)))
    stack = Stack(bootstrap, tmp_path, env)
    try:
        yield stack, broker
    finally:
        broker.send_signal(signal.SIGCONT)
        stack.stop()
        broker.kill()
        broker.wait(timeout=10)


def test_a_2mb_event_among_good_ones_is_dead_lettered_and_the_good_ones_flow(stack):
    svc = Identity(stack, default_db(stack))
    run = uuid.uuid4().hex[:8]
    good = purchases(run, 0, 8)
    huge = {**purchases(run, 100, 1)[0], "padding": "x" * 2_000_000}
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", max_request_size=8 * 1024 * 1024)
    for event in [*good[:4], huge, *good[4:]]:
        producer.send("crm.channel.pos", json.dumps(event).encode(), partition=0)
    producer.flush()
    producer.close()
    svc.wait_counted(run, 8, timeout=30)
    letters = wait_for(lambda: httpx.get(f"{svc.url}/v1/deadletters", headers=ADMIN, timeout=5).json()["items"],
                       timeout=20, what="the dead letter")
    assert [(d["code"], d["topic"]) for d in letters] == [("too_large", "crm.channel.pos")]
    assert letters[0]["reason"] == f"event: {len(json.dumps(huge).encode())} bytes is more than the maximum of 262144"
    assert svc.count(run) == (8, 8, 8)
    # The dead letter went out too (nothing is left to relay) and the worker never stopped.
    wait_for(lambda: _outbox_empty(svc.db), timeout=20, what="the outbox relayed")
    assert svc.proc.poll() is None and svc.ready().status_code == 200


def _outbox_empty(db: Path) -> bool:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


def test_a_paused_broker_gets_503_never_202_and_everything_accepted_lands_once(pausable):
    stack, broker = pausable
    svc = Identity(stack, default_db(stack))
    run = uuid.uuid4().hex[:8]
    assert svc.post(purchases(run, 0, 5)).status_code == 202
    svc.wait_counted(run, 5)

    broker.send_signal(signal.SIGSTOP)
    paused_at, refused, n, first_refusal, unready = time.monotonic(), [], 5, None, []
    while time.monotonic() - paused_at < 30:
        batch = purchases(run, n, 5)
        n += 5
        r = svc.post(batch)
        assert r.status_code == 503, r.text  # never 202 for what the broker did not acknowledge
        assert r.json()["error"]["code"] == "publish_unavailable" and int(r.headers["Retry-After"]) > 0
        refused.append(batch)
        first_refusal = first_refusal or time.monotonic()
        # One refusal is a blip; publishes failing for CRM_STALL_AFTER_S (3 s) make the service unready.
        if time.monotonic() - first_refusal >= float(FAST["CRM_STALL_AFTER_S"]):
            unready.append(svc.unready_because("IngestPublishFailing"))
    broker.send_signal(signal.SIGCONT)
    assert unready and any(unready), unready

    for batch in refused:  # the client sends again what was refused
        svc.post_until_accepted(batch)
    svc.wait_counted(run, n)
    wait_for(lambda: svc.ready().status_code == 200, timeout=20, what="ready again")
    assert svc.count(run) == (n, n, n) and svc.proc.poll() is None and len(refused) >= 5


def test_a_full_disk_holds_the_batch_until_space_returns(stack, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    try:
        svc = Identity(stack, sqlite_path(f"sqlite:///{disk}/crm.db", "identity"),
                       CRM_STORE_URL=f"sqlite:///{disk}/crm.db")
        run = uuid.uuid4().hex[:8]
        assert svc.post(purchases(run, 0, 5)).status_code == 202
        svc.wait_counted(run, 5)
        filler = disk / "filler"
        # Unbuffered: a write the disk takes only part of leaves nothing in a buffer for close() to fail on again
        # (the space left is whole pages, not always whole blocks of 64 KiB).
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        assert svc.post(purchases(run, 5, 500)).status_code == 202  # publishing needs no disk
        wait_for(lambda: svc.unready_because("StoreRetrying"), timeout=20, what="unready: store retrying")
        assert svc.count(run) == (5, 5, 5)
        filler.unlink()
        svc.wait_counted(run, 505)
        wait_for(lambda: svc.ready().status_code == 200, timeout=20, what="ready again")
        assert svc.proc.poll() is None
    finally:
        stack.stop()
        subprocess.run(["umount", "-l", str(disk)], check=False)


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()  # held until the test has seen what it waits for, however slow the machine
conn.execute("COMMIT")
"""


def test_a_database_file_locked_by_another_process_delays_but_loses_nothing(stack):
    svc = Identity(stack, default_db(stack))
    run = uuid.uuid4().hex[:8]
    assert svc.post(purchases(run, 0, 5)).status_code == 202
    svc.wait_counted(run, 5)
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(svc.db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        assert svc.post(purchases(run, 5, 100)).status_code == 202
        wait_for(lambda: svc.unready_because("BatchStuck"), timeout=30, what="unready: batch stuck")
        assert svc.count(run) == (5, 5, 5)
        locker.stdin.write("release\n")
        locker.stdin.flush()
        assert locker.wait(timeout=30) == 0
    finally:
        locker.kill()
        locker.wait()
    svc.wait_counted(run, 105)
    wait_for(lambda: svc.ready().status_code == 200, timeout=20, what="ready again")
    assert svc.count(run) == (105, 105, 105) and svc.proc.poll() is None


def test_a_service_killed_mid_batch_loses_nothing_once_the_client_sends_again(stack):
    svc = Identity(stack, default_db(stack))
    run = uuid.uuid4().hex[:8]
    batches = [purchases(run, 250 * b, 250) for b in range(12)]
    outcome: dict[int, object] = {}
    posting: list[int] = []

    def client() -> None:
        for b, batch in enumerate(batches):
            posting.append(b)
            try:
                outcome[b] = svc.post(batch, timeout=10).status_code
            except httpx.HTTPError as exc:
                outcome[b] = type(exc).__name__

    sender = threading.Thread(target=client)
    sender.start()
    wait_for(lambda: len(posting) >= 3, timeout=30, interval=0.01, what="the third batch on its way")
    svc.proc.send_signal(signal.SIGKILL)
    sender.join(timeout=60)
    assert outcome[0] == 202 and any(v != 202 for v in outcome.values()), outcome
    svc.proc.wait(timeout=10)
    svc.restart()
    # Every batch answered 202 was acknowledged by the broker before the kill: it lands with no help.
    accepted = [b for b, v in outcome.items() if v == 202]
    svc.wait_counted(run, 250 * len(accepted), timeout=60)
    assert svc.count(run) == (250 * len(accepted),) * 3
    for b, batch in enumerate(batches):  # the client sends what it has no 202 for (in flight at the kill, or after)
        if b not in accepted:
            svc.post_until_accepted(batch)
    svc.post_until_accepted(batches[0])  # and a batch sent twice still counts once
    svc.wait_counted(run, 3000, timeout=60)
    assert svc.count(run) == (3000, 3000, 3000)
