"""The batch runner's relay: a message the broker refuses for good is dead-lettered alone and never
retried; outages are retried; ``/readyz``'s progress check says when nothing moves."""

from __future__ import annotations

import sqlite3
import time

import pytest
from kafka.errors import InvalidTopicError, KafkaTimeoutError, MessageSizeTooLargeError

from shared.observability.metrics import ServiceMetrics
from shared.storage.base import OutboxMessage
from shared.streaming.consumer import BatchRunner, IngestPublishFailing, StoreRetrying, is_permanent_publish_error


class Broker:
    """Takes every message but those named in ``refuse`` (a permanent error) or while ``down`` (transient)."""

    def __init__(self, refuse: dict[bytes, Exception] | None = None, down: int = 0) -> None:
        self.refuse = refuse or {}
        self.down = down
        self.calls = 0
        self.log: list[bytes] = []

    def publish(self, messages) -> None:
        self.calls += 1
        if self.down:
            self.down -= 1
            raise KafkaTimeoutError("no acknowledgement")
        for m in messages:
            if m.value in self.refuse:
                raise self.refuse[m.value]
        self.log += [m.value for m in messages]


def runner(broker: Broker, outbox: dict[int, OutboxMessage], letters: list, **kw) -> BatchRunner:
    def failed(message, letter):
        letters.append(letter)
        outbox.pop(message.seq)

    def delete(seqs):
        for s in seqs:
            outbox.pop(s)

    return BatchRunner(name=f"svc{time.monotonic_ns()}", metrics=ServiceMetrics(f"svc{time.monotonic_ns()}"),
                       publish=broker.publish, delete_outbox=delete, publish_failed=failed, **kw)


def outbox_of(*values: bytes) -> dict[int, OutboxMessage]:
    return {n: OutboxMessage("crm.customer.events", v, b"k", [], n) for n, v in enumerate(values, 1)}


@pytest.mark.parametrize("error", [MessageSizeTooLargeError("2000000 bytes"), InvalidTopicError()])
def test_a_message_the_broker_refuses_for_good_is_dead_lettered_alone_and_the_others_flow(error):
    outbox = outbox_of(b"a", b"huge", b"c")
    broker, letters = Broker(refuse={b"huge": error}), []
    started = time.monotonic()
    runner(broker, outbox, letters).relay(list(outbox.values()))
    assert time.monotonic() - started < 1  # no retrying: the error is permanent
    assert broker.log == [b"a", b"c"] and outbox == {}
    (letter,) = letters
    assert (letter.code, letter.topic, letter.value) == ("publish_failed", "crm.customer.events", b"huge")
    assert letter.reason == f"publishing failed: {type(error).__name__}"


def test_an_outage_is_retried_until_the_broker_acknowledges():
    outbox = outbox_of(b"a", b"b")
    broker, letters = Broker(down=2), []
    runner(broker, outbox, letters).relay(list(outbox.values()))
    assert broker.calls == 3 and broker.log == [b"a", b"b"] and letters == [] and outbox == {}


def test_what_is_permanent():
    assert is_permanent_publish_error(MessageSizeTooLargeError())
    assert not is_permanent_publish_error(KafkaTimeoutError())
    assert not is_permanent_publish_error(TimeoutError())


def test_progress_check_reports_a_store_retried_longer_than_the_limit_and_clears_on_success():
    r = runner(Broker(), {}, [], stall_after_s=0.3)
    started, seen = time.monotonic(), []

    class Done:
        outbox: list = []

    def handle(batch):
        try:
            r.check_progress()
            seen.append("ready")
        except StoreRetrying as exc:
            seen.append(str(exc))
        if time.monotonic() - started < 0.8:
            raise sqlite3.OperationalError("database is locked")
        return Done()

    r.run_sync(handle, [])
    assert seen[0] == "ready" and seen[-1].startswith("store failing for") and seen[-1].endswith("(OperationalError)")
    r.check_progress()  # the batch went through: ready again


def test_progress_check_reports_ingestion_publishes_failing_for_the_stall_limit_until_one_succeeds():
    now = [100.0]
    r = runner(Broker(), {}, [], stall_after_s=30, monotonic=lambda: now[0])
    r.note_failure("ingest", KafkaTimeoutError())
    r.check_progress()  # one failed publish is a blip, not a service that cannot make progress
    now[0] += 29
    r.note_failure("ingest", KafkaTimeoutError())
    r.check_progress()
    now[0] += 1
    r.note_failure("ingest", KafkaTimeoutError())
    with pytest.raises(IngestPublishFailing, match=r"ingest failing for 30 s \(KafkaTimeoutError\)"):
        r.check_progress()
    r.note_success("ingest")
    r.check_progress()
    r.note_failure("ingest", KafkaTimeoutError())
    now[0] += 30
    r.note_failure("ingest", KafkaTimeoutError())
    with pytest.raises(IngestPublishFailing):
        r.check_progress()
    now[0] += 30  # no publish tried since: the probe must not keep traffic away for good
    r.check_progress()


def test_a_relay_the_batch_thread_makes_clears_a_failing_ingestion_and_an_api_relay_does_not_count():
    now = [100.0]
    outbox = outbox_of(b"a")
    r = runner(Broker(), outbox, [], stall_after_s=30, monotonic=lambda: now[0])
    r.note_failure("ingest", KafkaTimeoutError())
    now[0] += 30
    r.note_failure("ingest", KafkaTimeoutError())
    r.relay(list(outbox.values()))  # an API call's relay: says nothing about the consumer
    with pytest.raises(IngestPublishFailing):
        r.check_progress()

    class Done:
        outbox = [OutboxMessage("crm.customer.events", b"b", b"k", [], None)]

    r.run_sync(lambda batch: Done(), [])  # the batch thread's publish succeeded: the broker acknowledges
    r.check_progress()


def test_an_authorization_failure_is_retried_as_an_outage_not_dead_lettered():
    from kafka.errors import TopicAuthorizationFailedError

    assert not is_permanent_publish_error(TopicAuthorizationFailedError())
    outbox = outbox_of(b"a")
    calls = []

    def publish(messages):
        calls.append(len(messages))
        if len(calls) < 3:
            raise TopicAuthorizationFailedError()

    letters: list = []
    r = BatchRunner(name="svc-auth", metrics=ServiceMetrics("svc-auth"), publish=publish,
                    delete_outbox=lambda seqs: [outbox.pop(s) for s in seqs],
                    publish_failed=lambda m, letter: letters.append(letter))
    r.relay(list(outbox.values()))
    assert calls == [1, 1, 1] and letters == [] and outbox == {}
