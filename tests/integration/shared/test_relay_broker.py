"""The relay against the real broker: a message the producer can never send is dead-lettered
``publish_failed`` at once and leaves the outbox; the messages around it are published."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer

from shared.clock import system_clock
from shared.service import Service
from shared.settings import Settings
from shared.storage.base import OutboxMessage
from shared.storage.outbox import SqliteStore
from shared.streaming.kafka import ensure_topics, lazy_publisher
from shared.streaming.packs import carried

pytestmark = [pytest.mark.broker]


def test_a_message_over_the_producer_limit_is_dead_lettered_and_the_rest_flow(broker, tmp_path):
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path))
    ensure_topics(settings, ["crm.customer.events"])
    store = SqliteStore(tmp_path / "svc.db")
    service = Service(name=f"relay{time.monotonic_ns()}", settings=settings, store=store,
                      publish=lazy_publisher(settings, "relay-test"), clock=system_clock, deps=None,
                      register=lambda app, svc: None)
    huge = b"x" * (33 * 1024 * 1024)  # over the producer's 32 MiB: refused before it leaves the process
    outbox = store.outbox_add([OutboxMessage("crm.customer.events", v, b"k") for v in (b"first", huge, b"last")])
    started = time.monotonic()
    service.relay(outbox)
    assert time.monotonic() - started < 15  # not retried for minutes
    assert store.outbox_pending() == []
    (letter,) = store.dead_letters()
    assert (letter.code, letter.topic, letter.reason) == ("publish_failed", "crm.customer.events",
                                                         "publishing failed: MessageSizeTooLargeError")
    consumer = KafkaConsumer("crm.customer.events", bootstrap_servers=broker, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    try:
        # Sent again one by one, "first" may go out twice: every consumer ignores a message it saw.
        assert set(m.value for m in carried(consumer)) == {b"first", b"last"}
    finally:
        consumer.close()
