"""The consume loop every service's agents share: batch, process off the event loop, publish, ack.

faust acknowledges a batch from ``take_events`` even when the agent raises, so nothing here is
allowed to raise: poison messages are dead-lettered by the handler, transient failures are retried
with backoff, and a failure that outlasts the retries ends the process without acknowledging the
batch, so it is redelivered after a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Link, SpanKind
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from shared.clock import iso_utc, system_clock
from shared.observability.metrics import ServiceMetrics
from shared.observability.trace_context import linked_contexts, traced_parent, tracer
from shared.storage.base import DeadLetter, OutboxMessage, is_transient
from shared.streaming.batch import BatchOutcome, Incoming
from shared.streaming.packs import expand

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

_MAX_LINKS = 128  # the SDK's default limit of links per span
EXIT_UNRECOVERABLE = 75  # EX_TEMPFAIL: the supervisor restarts us and the batch is redelivered


# The only publish errors that condemn one message (the broker will never take it, whatever is retried).
# Every other Kafka error, retriable or not (authorization, credentials, a broker away), says the client or
# the cluster cannot publish anything: it is retried like an outage and shows in /readyz, so a mistake in
# the set-up never drains a stream of good messages into dead letters.
_PER_MESSAGE = ("MessageSizeTooLargeError", "RecordListTooLargeError", "InvalidRecordError", "CorruptRecordError",
                "CorruptRecordException", "InvalidTopicError", "UnsupportedForMessageFormatError")


def is_permanent_publish_error(exc: BaseException) -> bool:
    """Whether publishing this one message failed for good (too large, an invalid topic): retrying repeats it."""
    from kafka.errors import KafkaError

    return isinstance(exc, KafkaError) and type(exc).__name__ in _PER_MESSAGE


def _transient_or_kafka(exc: BaseException) -> bool:
    from kafka.errors import KafkaError

    if isinstance(exc, KafkaError):
        return not is_permanent_publish_error(exc)
    return is_transient(exc) or isinstance(exc, TimeoutError)


class NotProgressing(Exception):
    """``/readyz``: the service cannot make progress; the subclass names what is failing, the message for
    how long and with which error (shown in ``/readyz``'s details)."""

    explains_readiness = True


class StoreRetrying(NotProgressing):
    """Batches have been failing against the store for longer than the stall limit."""


class PublishRetrying(NotProgressing):
    """The broker has not acknowledged the outbox for longer than the stall limit."""


class IngestPublishFailing(NotProgressing):
    """HTTP ingestion's last publish was not acknowledged by the broker."""


class BatchStuck(NotProgressing):
    """One batch has been running for longer than the stall limit (a store that keeps it waiting)."""


_STALLS = {"store": StoreRetrying, "publish": PublishRetrying, "ingest": IngestPublishFailing}


class BatchRunner:
    """Runs one service's batch handler off the event loop with retries, then relays its outbox."""

    def __init__(self, *, name: str, metrics: ServiceMetrics, publish: Callable[[list], None],
                 delete_outbox: Callable[[list[int]], None], give_up_after_s: float = 300.0,
                 publish_failed: Callable[[OutboxMessage, DeadLetter], None] | None = None,
                 stall_after_s: float = 30.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.metrics = metrics
        self._publish = publish
        self._delete = delete_outbox
        self._publish_failed = publish_failed
        self._give_up = give_up_after_s
        self._stall_after = stall_after_s
        self.monotonic = monotonic  # for /readyz's bookkeeping; tests pass a clock they move
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-batch")
        # What is failing now: what -> (failing since, last failure, error name), monotonic seconds.
        self._trouble: dict[str, tuple[float, float, str]] = {}
        self._trouble_lock = threading.Lock()
        self._busy_since: float | None = None  # when the batch in progress started
        # What this service consumes and how: (agent name, topics, handle), as the agents registered them.
        self.consumers: list[tuple[str, list[str], Callable[[list], Any]]] = []

    def note_failure(self, what: str, exc: BaseException) -> None:
        """Remember that ``what`` (store, publish, ingest) just failed, for ``/readyz``."""
        now = self.monotonic()
        with self._trouble_lock:
            since = self._trouble.get(what, (now,))[0]
            self._trouble[what] = (since, now, type(exc).__name__)

    def note_success(self, what: str) -> None:
        """``what`` works again."""
        if what in self._trouble:
            with self._trouble_lock:
                self._trouble.pop(what, None)

    def check_progress(self) -> None:
        """Raise NotProgressing while the runner has retried one failure longer than the stall limit,
        or while HTTP ingestion's publishes fail (until one succeeds, or none is tried for that long)."""
        now = self.monotonic()
        with self._trouble_lock:
            trouble = dict(self._trouble)
        for what, (since, last, error) in sorted(trouble.items()):
            stalled = now - since >= self._stall_after
            if what == "ingest":  # nothing retries an ingestion: it is failing while failures keep coming
                stalled = stalled and now - last < self._stall_after
            if stalled:
                raise _STALLS.get(what, NotProgressing)(f"{what} failing for {now - since:.0f} s ({error})")
        busy = self._busy_since
        if busy is not None and now - busy >= self._stall_after:
            raise BatchStuck(f"a batch has been running for {now - busy:.0f} s")

    def _note_retry(self, what: str, exc: BaseException, *, note_progress: bool) -> None:
        self.metrics.retries(what).inc()
        if note_progress:
            self.note_failure(what, exc)
        log.warning("%s: transient failure (%s), retrying", what, type(exc).__name__)

    def _retrying(self, what: str, *, note_progress: bool = True, first_wait_s: float = 0.05,
                  give_up_after_s: float | None = None) -> Retrying:
        def note(state: Any) -> None:
            self._note_retry(what, state.outcome.exception(), note_progress=note_progress)

        stop_s = self._give_up if give_up_after_s is None else give_up_after_s
        return Retrying(retry=retry_if_exception(_transient_or_kafka), wait=wait_exponential(first_wait_s, max=5),
                        stop=stop_after_delay(stop_s), reraise=True, before_sleep=note)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, note_progress: bool = True) -> Any:
        # The first attempt is a plain call: three Retrying objects per batch (the handler, the publish, the
        # outbox delete) and their attempt bookkeeping were ~3% of a small batch's CPU, for calls that nearly
        # always succeed at once. A transient failure is then retried as tenacity did from the start: noted,
        # a 0.05 s wait, then waits doubling from 0.1 s, giving up once ``give_up_after_s`` has passed since
        # the first attempt began.
        started = time.monotonic()
        try:
            result = fn(*args)
        except Exception as exc:
            if not _transient_or_kafka(exc) or time.monotonic() - started >= self._give_up:
                raise
            self._note_retry(what, exc, note_progress=note_progress)
            time.sleep(0.05)
            left = self._give_up - (time.monotonic() - started)
            result = self._retrying(what, note_progress=note_progress, first_wait_s=0.1,
                                    give_up_after_s=left).__call__(fn, *args)
        if note_progress:
            self.note_success(what)
            if what == "publish":
                self.note_success("ingest")  # the broker acknowledges again
        return result

    def run_sync(self, handle: Callable[[list], Any], batch: list) -> Any:
        """Handle a batch and publish what it produced; raises only when retries are exhausted.

        The batch has a span of its own (messages of many traces share it), linked to its messages' traces
        (the traced ones only under CRM_TRACE_RATIO's sampler; up to the SDK's limit of links, a traced one
        among them if any) and sampled when one of them is;
        each message's own span continues its trace and links back to the batch's store work.
        """
        started = time.perf_counter()
        self._busy_since = self.monotonic()
        try:
            return self._run_sync(handle, batch, started)
        finally:
            self._busy_since = None

    def _run_sync(self, handle: Callable[[list], Any], batch: list, started: float) -> Any:
        contexts = linked_contexts(m.headers for m in batch[:_MAX_LINKS])
        if not any(ctx.trace_flags.sampled for ctx in contexts):
            # The span is sampled when it links a traced message (LinksOrParentBased): one traced past the
            # limit is linked too, so each traced event's trace shows its batch, however large the batch.
            for m in batch[_MAX_LINKS:]:
                if (ctx := traced_parent(m.headers)) is not None:
                    contexts[_MAX_LINKS - 1:] = [ctx]
                    break
        links = [Link(ctx) for ctx in contexts]
        with _tracer.start_as_current_span(f"{self.name} process batch", context=otel_context.Context(),
                                           kind=SpanKind.CONSUMER, links=links,
                                           attributes={"messaging.batch.message_count": len(batch),
                                                       "messaging.operation.type": "process",
                                                       "messaging.system": "kafka"}):
            outcome = self._call("store", handle, batch)
            self._relay(outcome.outbox, note_progress=True)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        now = time.time()
        for m in batch:
            if m.timestamp:
                self.metrics.event_age.observe(max(0.0, now - m.timestamp))
        return outcome

    def relay(self, messages: list[OutboxMessage]) -> None:
        """Publish outbox messages an API call committed, wait for the broker's acknowledgement, then
        forget them. Only the batch thread's own work counts for ``/readyz``: an API call that succeeds
        on one partition says nothing about the batch the consumer keeps retrying."""
        self._relay(messages, note_progress=False)

    def _relay(self, messages: list[OutboxMessage], *, note_progress: bool) -> None:
        """A permanent error (a message the broker will never take) is not retried: the batch is sent
        again one message at a time, and each message that fails for good is recorded as a dead
        letter ``publish_failed`` and leaves the outbox, so the others flow."""
        if not messages:
            return
        # The outbox messages go to ``publish`` as they are (it reads their topic, key, headers and value and
        # changes none of them): a copy of each as an ``Outgoing`` was a visible part of a small batch's relay.
        try:
            self._call("publish", self._publish, messages, note_progress=note_progress)
            sent = messages
        except Exception as exc:
            if not is_permanent_publish_error(exc):
                raise
            sent = self._relay_one_by_one(messages, note_progress=note_progress)
        # Counted per topic, as consumed messages are: a label lookup per message showed in every profile.
        for topic, n in Counter(m.topic for m in sent).items():
            self.metrics.published(topic).inc(n)
        self._call("store", self._delete, [m.seq for m in sent if m.seq is not None], note_progress=note_progress)

    def _relay_one_by_one(self, messages: list[OutboxMessage], *, note_progress: bool) -> list[OutboxMessage]:
        sent = []
        for m in messages:
            try:
                self._call("publish", self._publish, [m], note_progress=note_progress)
                sent.append(m)
            except Exception as exc:
                if not is_permanent_publish_error(exc):
                    raise
                log.error("%s: a %d-byte message for %s cannot be published (%s); dead-lettering it",
                          self.name, len(m.value), m.topic, type(exc).__name__)
                letter = publish_failure_letter(m, exc, service=self.name)
                if self._publish_failed is not None:
                    self._call("store", self._publish_failed, m, letter, note_progress=note_progress)
                elif m.seq is not None:
                    self._call("store", self._delete, [m.seq], note_progress=note_progress)
                self.metrics.dead_letters("publish_failed").inc()
        return sent

    def _run_parts(self, handle: Callable[[list], Any], batch: list, size: int) -> None:
        for start in range(0, len(batch), size):
            part = batch[start:start + size]
            # Counted as its part starts, not when the packs were taken: ``crm_events_consumed_total`` says how far
            # a consumer is through a backlog it took in one go.
            per_topic: dict[str, int] = {}
            for m in part:
                per_topic[m.topic] = per_topic.get(m.topic, 0) + 1
            for topic, n in per_topic.items():  # a labelled counter per message was a visible cost
                self.metrics.consumed(topic).inc(n)
            self.run_sync(handle, part)

    async def run(self, handle: Callable[[list], Any], batch: list, *, size: int | None = None) -> Any:
        """``run_sync`` in the batch thread; a stop request waits for the batch to finish first. With ``size``,
        the batch is handled ``size`` messages at a time, and a stop request waits for every part: faust
        acknowledges the whole batch when the agent leaves it."""
        loop = asyncio.get_running_loop()
        if size is None:
            fut = loop.run_in_executor(self._executor, self.run_sync, handle, batch)
        else:
            fut = loop.run_in_executor(self._executor, self._run_parts, handle, batch, size)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # Let the batch commit before faust acknowledges it on the way out; one that failed must not be
            # acknowledged at all.
            await asyncio.wait([fut])
            if fut.cancelled() or fut.exception() is None:
                raise
            self._exit_unacknowledged()
        except Exception:
            self._exit_unacknowledged()

    def _exit_unacknowledged(self) -> None:
        log.critical("%s: giving up on a batch after retries; exiting so it is redelivered", self.name)
        logging.shutdown()
        os._exit(EXIT_UNRECOVERABLE)


def publish_failure_letter(message: OutboxMessage, exc: BaseException, *, service: str) -> DeadLetter:
    """A dead letter for an outbox message the broker refused for good (redriving sends it to its topic)."""
    fingerprint = hashlib.sha256(f"{service}\0publish\0{message.topic}\0".encode() + message.value).hexdigest()
    at = iso_utc(system_clock())
    reason = f"publishing failed: {type(exc).__name__}"
    headers = [h for h in message.headers if not h[0].startswith("crm.dlq.")] + [
        ("crm.dlq.code", b"publish_failed"), ("crm.dlq.reason", reason.encode()),
        ("crm.dlq.topic", message.topic.encode()), ("crm.dlq.service", service.encode()), ("crm.dlq.at", at.encode()),
    ]
    return DeadLetter(fingerprint, message.topic, -1, -1, "publish_failed", reason, message.value, headers, at)


class _Relayed:
    """The outcome of a sweep: only messages to relay."""

    def __init__(self, outbox: list[OutboxMessage]) -> None:
        self.outbox = outbox


def register_batch_agent(app, *, name: str, topic_names: list[str], runner: BatchRunner, batch_size: int,
                         within_s: float, handle: Callable[[list[Incoming]], BatchOutcome]) -> None:
    """A faust agent that feeds batches of raw messages to ``handle`` through ``runner``.

    ``handle`` owns every message's fate (processed, duplicate or dead-lettered); the runner retries
    transient failures and exits without acknowledging when they last too long.
    """
    from shared.streaming.faust_transport import raw_topic

    channel = raw_topic(app, *topic_names)
    metrics = runner.metrics

    def counted(batch: list[Incoming]) -> BatchOutcome:
        outcome = handle(batch)
        metrics.outcomes("processed").inc(outcome.processed)
        metrics.outcomes("duplicate").inc(outcome.duplicates)
        metrics.outcomes("dead_lettered").inc(outcome.dead_lettered)
        for what, n in outcome.counts.items():
            if what.startswith("dead_letter:"):
                metrics.dead_letters(what.removeprefix("dead_letter:")).inc(n)
            else:
                metrics.handled(what).inc(n)
        return outcome

    runner.consumers.append((name, list(topic_names), counted))

    async def consume(stream):
        async for events in stream.take_events(batch_size, within=within_s):
            batch: list[Incoming] = []
            for e in events:
                msg = e.message
                batch += expand(msg.value or b"", msg.topic, msg.partition, msg.offset, list(msg.headers or []),
                                msg.key, msg.timestamp)
            # Packs can hold many messages each: a batch is at most ``batch_size`` messages however they came,
            # each part committed before faust acknowledges the packs (a stop waits for every part).
            await runner.run(counted, batch, size=batch_size)

    app.agent(channel, name=name)(consume)


def register_housekeeping(app, *, runner: BatchRunner, outbox_pending: Callable[..., list[OutboxMessage]]) -> None:
    """Timers every worker runs: the assignment gauge, and relaying what a crashed worker left in the outbox."""

    async def note_assignment():
        runner.metrics.assigned.set(len(app.consumer.assignment()))

    async def sweep_outbox():
        # Messages a crashed worker committed but never published.
        pending = outbox_pending(limit=5000, older_than_s=15.0)
        if pending:
            log.info("%s: relaying %d outbox messages left by an earlier run", runner.name, len(pending))
            await runner.run(lambda _: _Relayed(pending), [])

    app.timer(interval=1.0, name=f"{runner.name}.note_assignment")(note_assignment)
    app.timer(interval=5.0, name=f"{runner.name}.sweep_outbox")(sweep_outbox)
