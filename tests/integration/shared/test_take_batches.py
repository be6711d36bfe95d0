"""Issue 13: messages that arrived while a batch was processed are the next batch at once, not after a window.

faust's own ``take_events`` opened the batch window (``CRM_BATCH_WITHIN_S``) only once the previous batch
was done, so what queued up during a batch waited a whole window after it: every hop's latency was the
window plus the batch. A real worker on the real broker, with a two-minute window: its first (full) batch
is slow, and the three messages published during it must come as the second batch, whole, long before
any window could end."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from shared.settings import Settings
from shared.streaming.kafka import ensure_topics
from tests.conftest import ROOT

pytestmark = [pytest.mark.broker]

TOPIC = "crm.customer.events"


def batches(path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_messages_that_arrive_during_a_slow_batch_are_the_next_batch_without_a_window(broker, tmp_path):
    ensure_topics(Settings(_env_file=None, kafka_bootstrap=broker), [TOPIC])
    producer = KafkaProducer(bootstrap_servers=broker)
    for i in range(5):  # a full batch: taken at once
        producer.send(TOPIC, value=f"m{i}".encode(), key=b"k").get(timeout=30)
    producer.close()
    out = tmp_path / "batches.jsonl"
    worker = subprocess.Popen([sys.executable, "-m", "tests.integration.shared.take_worker", broker, TOPIC, str(out)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90  # the worker's window is 120 s
        while len(batches(out)) < 2 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.1)
        assert batches(out) == [["m0", "m1", "m2", "m3", "m4"], ["late0", "late1", "late2"]], \
            worker.stderr.read().decode()[-2000:] if worker.poll() is not None else "no second batch in time"
        # Both batches acknowledged once processed: the group's committed offsets cover all eight.
        while committed(broker) < 8 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert committed(broker) == 8
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert worker.returncode == 0  # a stop waits for nothing: no window, no batch in progress


def committed(broker: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=broker, group_id="take-test", enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(TOPIC, p)) or 0 for p in consumer.partitions_for_topic(TOPIC))
    finally:
        consumer.close()
