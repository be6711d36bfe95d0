"""The consume loop every service's agents share: batch, process off the event loop, publish, ack.

faust acknowledges a batch from ``take_events`` even when the agent raises, so nothing here is
allowed to raise: poison messages are dead-lettered by the handler, transient failures are retried
with backoff, and a failure that outlasts the retries ends the process without acknowledging the
batch, so it is redelivered after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from shared.batch import BatchOutcome, Incoming
from shared.kafka import Outgoing
from shared.metrics import ServiceMetrics
from shared.storage import OutboxMessage, is_transient
from shared.tracing import extract_context, tracer

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

_MAX_LINKS = 128  # the SDK's default limit of links per span
EXIT_UNRECOVERABLE = 75  # EX_TEMPFAIL: the supervisor restarts us and the batch is redelivered


def _transient_or_kafka(exc: BaseException) -> bool:
    from kafka.errors import KafkaError

    return is_transient(exc) or isinstance(exc, KafkaError | TimeoutError)


class BatchRunner:
    """Runs one service's batch handler off the event loop with retries, then relays its outbox."""

    def __init__(self, *, name: str, metrics: ServiceMetrics, publish: Callable[[list], None],
                 delete_outbox: Callable[[list[int]], None], give_up_after_s: float = 300.0) -> None:
        self.name = name
        self.metrics = metrics
        self._publish = publish
        self._delete = delete_outbox
        self._give_up = give_up_after_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-batch")
        # What this service consumes and how: (agent name, topics, handle), as the agents registered them.
        self.consumers: list[tuple[str, list[str], Callable[[list], Any]]] = []

    def _retrying(self, what: str) -> Retrying:
        def note(state: Any) -> None:
            self.metrics.retries(what).inc()
            log.warning("%s: transient failure (%s), retrying", what, type(state.outcome.exception()).__name__)

        return Retrying(retry=retry_if_exception(_transient_or_kafka), wait=wait_exponential(0.05, max=5),
                        stop=stop_after_delay(self._give_up), reraise=True, before_sleep=note)

    def run_sync(self, handle: Callable[[list], Any], batch: list) -> Any:
        """Handle a batch and publish what it produced; raises only when retries are exhausted.

        The batch has a span of its own (messages of many traces share it), linked to every message's
        trace; each message's own span continues its trace and links back to the batch's store work.
        """
        started = time.perf_counter()
        links = [Link(ctx) for m in batch[:_MAX_LINKS]
                 if (ctx := trace.get_current_span(extract_context(m.headers)).get_span_context()).is_valid]
        with _tracer.start_as_current_span(f"{self.name} process batch", context=otel_context.Context(),
                                           kind=SpanKind.CONSUMER, links=links,
                                           attributes={"messaging.batch.message_count": len(batch),
                                                       "messaging.operation.type": "process",
                                                       "messaging.system": "kafka"}):
            outcome = self._retrying("store").__call__(handle, batch)
            self.relay(outcome.outbox)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        now = time.time()
        for m in batch:
            if m.timestamp:
                self.metrics.event_age.observe(max(0.0, now - m.timestamp))
        return outcome

    def relay(self, messages: list[OutboxMessage]) -> None:
        """Publish outbox messages, wait for the broker's acknowledgement, then forget them."""
        if not messages:
            return
        out = [Outgoing(m.topic, m.value, m.key, list(m.headers)) for m in messages]
        self._retrying("publish").__call__(self._publish, out)
        for m in messages:
            self.metrics.published(m.topic).inc()
        self._retrying("store").__call__(self._delete, [m.seq for m in messages if m.seq is not None])

    async def run(self, handle: Callable[[list], Any], batch: list) -> Any:
        """``run_sync`` in the batch thread; a stop request waits for the batch to finish first."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, self.run_sync, handle, batch)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            # Let the batch commit before faust acknowledges it on the way out.
            await asyncio.wait([fut])
            raise
        except Exception:
            log.critical("%s: giving up on a batch after retries; exiting so it is redelivered", self.name)
            logging.shutdown()
            os._exit(EXIT_UNRECOVERABLE)


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
    channel = app.topic(*topic_names, value_serializer="raw", key_serializer="raw")
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
            batch = []
            per_topic: dict[str, int] = {}
            for e in events:
                msg = e.message
                per_topic[msg.topic] = per_topic.get(msg.topic, 0) + 1
                batch.append(Incoming(msg.value or b"", msg.topic, msg.partition, msg.offset,
                                      list(msg.headers or []), msg.key, msg.timestamp))
            for topic, n in per_topic.items():  # a labelled counter per message was a visible cost
                metrics.consumed(topic).inc(n)
            await runner.run(counted, batch)

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
