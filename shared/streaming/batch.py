"""How every service handles a batch of consumed messages, so each message gets a decided fate.

A batch is decoded message by message: one that cannot be decoded is poison and is dead-lettered
with its reason. The rest are applied in one store transaction together with the messages that
announce the result (the outbox). If that transaction fails for a reason that is not transient,
the batch is applied again one message at a time, so the message at fault is dead-lettered alone
and the others land. Transient errors propagate: the caller retries the whole batch.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind

from shared.clock import Clock, iso_utc
from shared.contract import topics
from shared.contract.events import InvalidEvent, check_size
from shared.observability.trace_context import (
    extract_context,
    message_headers,
    sampled_out_child,
    tracer,
    unsampled_child,
)
from shared.storage.base import DeadLetter, OutboxMessage, is_transient

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

T = TypeVar("T")

# The largest message any consumer decodes: what a Kafka broker takes by default. Channel events have a
# smaller, configured limit (``CRM_MAX_EVENT_BYTES``) that identity passes in.
MAX_MESSAGE_BYTES = 1_000_000


@dataclass(frozen=True)
class Incoming:
    """One consumed message and where it came from."""

    value: bytes
    topic: str
    partition: int
    offset: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    key: bytes | None = None
    timestamp: float | None = None  # when the broker got it (epoch seconds), if known
    fault: str | None = None  # why it cannot be read at all (a pack that is not one: ``shared.streaming.packs``)


@dataclass
class BatchOutcome:
    """What a batch did; ``outbox`` holds the messages to publish now that it has committed."""

    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    counts: Counter = field(default_factory=Counter)
    outbox: list[OutboxMessage] = field(default_factory=list)


@dataclass(frozen=True)
class Decoded(Generic[T]):
    """A message and what it decoded to."""

    msg: Incoming
    item: T


Apply = Callable[[list[Decoded[T]], BatchOutcome], list[OutboxMessage]]


def process_batch(messages: list[Incoming], *, store: Any, service: str, prefix: str, clock: Clock,
                  decode: Callable[[Incoming], T], apply: Apply, max_bytes: int = MAX_MESSAGE_BYTES) -> BatchOutcome:
    """Decode, apply in one transaction, isolate failures; returns what to publish.

    A message larger than ``max_bytes`` is dead-lettered ``too_large`` before it is decoded, so
    nothing derived from it (a stored copy, an outbox message) can exceed what the broker takes.
    ``decode`` raises :class:`InvalidEvent` for a message that can never be processed.
    ``apply`` runs inside the store transaction, counts processed and duplicate messages on the
    outcome and returns the outbox messages its changes announce.
    """
    outcome = BatchOutcome()
    ready: list[Decoded[T]] = []
    letters: list[tuple[Incoming, str, str]] = []
    for msg in messages:
        if msg.fault is not None:
            letters.append((msg, "bad_pack", msg.fault))
            continue
        try:
            check_size(msg.value, max_bytes)
            ready.append(Decoded(msg, decode(msg)))
        except InvalidEvent as exc:
            letters.append((msg, exc.code, str(exc)))
        except Exception as exc:
            if is_transient(exc):
                raise
            # A decoder that fails unexpectedly must not stop the consumer: redelivered, the same
            # message would fail again, forever. It is poison for this version of the service.
            log.error("%s: message could not be decoded (%s); dead-lettering it", service, type(exc).__name__)
            letters.append((msg, "decode_error", f"decoding failed: {type(exc).__name__}"))
    try:
        with store.transaction():
            pending = apply(ready, outcome) + _dead_letters(letters, store, service, prefix, clock, outcome)
            outcome.outbox = store.outbox_add(pending)
        return outcome
    except Exception as exc:
        if is_transient(exc):
            raise
        log.warning("%s: batch failed (%s); isolating its messages one by one", service, type(exc).__name__)
    return _one_by_one(ready, letters, store=store, service=service, prefix=prefix, clock=clock, apply=apply)


def _one_by_one(ready: list[Decoded[T]], letters: list[tuple[Incoming, str, str]], *, store: Any, service: str,
                prefix: str, clock: Clock, apply: Apply) -> BatchOutcome:
    outcome = BatchOutcome()
    for one in ready:
        trial = BatchOutcome()
        try:
            with store.transaction():
                outcome.outbox += store.outbox_add(apply([one], trial))
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error("%s: message failed alone (%s); dead-lettering it", service, type(exc).__name__)
            letters.append((one.msg, "processing_error", f"processing failed: {type(exc).__name__}"))
            continue
        outcome.processed += trial.processed
        outcome.duplicates += trial.duplicates
        outcome.counts.update(trial.counts)
    with store.transaction():
        outcome.outbox += store.outbox_add(_dead_letters(letters, store, service, prefix, clock, outcome))
    return outcome


def _dead_letters(letters: list[tuple[Incoming, str, str]], store: Any, service: str, prefix: str, clock: Clock,
                  outcome: BatchOutcome) -> list[OutboxMessage]:
    out = []
    for msg, code, reason in letters:
        letter = dead_letter_for(msg, code, reason, clock, service=service)
        if store.dead_letter_add(letter):
            outcome.dead_lettered += 1
            outcome.counts[f"dead_letter:{code}"] += 1
            topic = f"{prefix}{topics.DEADLETTER}"
            out.append(OutboxMessage(topic, msg.value, msg.key, message_headers(topic, letter.headers)))
    return out


def dead_letter_for(msg: Incoming, code: str, reason: str, clock: Clock, *, service: str) -> DeadLetter:
    """A dead letter: the message unchanged, with reason and origin in headers."""
    fingerprint = hashlib.sha256(f"{service}\0{msg.topic}\0".encode() + msg.value).hexdigest()
    at = iso_utc(clock())
    headers = [h for h in msg.headers if not h[0].startswith("crm.dlq.")] + [
        ("crm.dlq.code", code.encode()),
        ("crm.dlq.reason", reason.encode()),
        ("crm.dlq.topic", msg.topic.encode()),
        ("crm.dlq.partition", str(msg.partition).encode()),
        ("crm.dlq.offset", str(msg.offset).encode()),
        ("crm.dlq.service", service.encode()),
        ("crm.dlq.at", at.encode()),
    ]
    return DeadLetter(fingerprint, msg.topic, msg.partition, msg.offset, code, reason, msg.value, headers, at)


def message_span(service: str, msg: Incoming,
                 attributes: Mapping[str, Any] | Callable[[], Mapping[str, Any]]) -> AbstractContextManager[Span]:
    """One consumer span per message, continuing the trace its publisher started, linked to the span
    of the store work it is part of (the batch's transaction), so the event's trace reaches the store.

    ``attributes`` may be a callable: it is called only for a span that records (an event sampled out
    costs no attributes). Attributes the batch's span carries for all its messages (the messaging system,
    the operation) are not repeated on each message's span: every attribute is cleaned and exported
    span after span."""
    context = None
    if (quiet := sampled_out_child(msg.headers)) is None:  # most events are sampled out: told by their traceparent
        context = extract_context(msg.headers)
        quiet = unsampled_child(context)
    if quiet is not None:  # an event sampled out: nothing to record, only its context to hand on
        return _Current(quiet)
    return _consumer_span(service, msg, attributes, context)


class _Current:
    """``span`` is the current span inside the block (a span that records nothing: nothing to end). A class,
    not a generator: most messages take this way, and a generator's context manager costs them more than this."""

    __slots__ = ("span", "_token")

    def __init__(self, span: Span) -> None:
        self.span = span

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, *exc: object) -> None:
        otel_context.detach(self._token)


@contextmanager
def _consumer_span(service: str, msg: Incoming, attributes: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
                   context: otel_context.Context) -> Iterator[Span]:
    batch = trace.get_current_span().get_span_context()
    span = _tracer.start_span(f"{service} process {msg.topic}", context=context,
                              kind=SpanKind.CONSUMER, links=[Link(batch)] if batch.is_valid else None)
    if span.is_recording():
        span.set_attributes({"messaging.destination.name": msg.topic,
                             "messaging.destination.partition.id": str(msg.partition),
                             "messaging.kafka.offset": msg.offset,
                             **(attributes() if callable(attributes) else attributes)})
    with trace.use_span(span, end_on_exit=True):
        yield span
