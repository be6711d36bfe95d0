"""Kafka plumbing: topic creation, the kafka-python producer, the faust app factory."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from shared.contract import topics
from shared.observability.telemetry import kafka_instrumented
from shared.observability.trace_context import (
    TRACE_HEADERS,
    Headers,
    inject_headers,
    linked_contexts,
)
from shared.settings import Settings
from shared.streaming.packs import PACK_HEADER, PACKED_TOPICS, VERSION, pack, packed

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)


_MAX_REQUEST_BYTES = 32 * 1024 * 1024


class Sendable(Protocol):
    """What a publisher reads of a message: an ``Outgoing``, or an outbox message relayed as it is."""

    @property
    def topic(self) -> str: ...
    @property
    def value(self) -> bytes: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True)
class Outgoing:
    """One message to publish."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = field(default_factory=list)


@retry(
    retry=retry_if_exception_type(KafkaError),
    wait=wait_exponential(multiplier=0.2, max=2),
    stop=stop_after_delay(30),
    reraise=True,
)
def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> list[str]:
    """Create the platform's topics (prefixed) if missing; returns the names created."""
    wanted = [settings.topic(t) for t in (names or topics.ALL_TOPICS)]
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="crm-admin")
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        created = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, settings.topic_partitions, 1)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()


class KeyHashPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (a keyed message goes to the murmur2 hash of its key, modulo the
    topic's partitions in order; a keyless one to a random partition), with the hashes of recent keys kept.

    The default hashes every key in pure Python and lists every topic and the available partitions for
    each message, about 4 us a message relayed; a customer's key recurs with each of its events. The
    partition chosen is the same (tests/unit/shared/test_key_partitioner.py).
    """

    def __init__(self, kept_keys: int = 16_384) -> None:
        super().__init__()
        self._hash = lru_cache(maxsize=kept_keys)(murmur2)

    def partition(self, topic, key, serialized_key, value, serialized_value, cluster):
        # Only bytes can be kept (kafka-python also takes a bytearray or memoryview key, which cannot be hashed
        # for the cache); a keyless message, or a topic the metadata does not know (the default refuses it) or
        # knows without partitions, takes the default's path.
        partitions = cluster.partitions_for_topic(topic) if isinstance(serialized_key, bytes) else None
        if not partitions:
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        return self.choose(serialized_key, partitions)

    def choose(self, key: bytes, partitions: Iterable[int]) -> int:
        """The partition of a keyed message among a topic's ``partitions``."""
        partitions = sorted(partitions)
        return partitions[(self._hash(key) & 0x7FFFFFFF) % len(partitions)]


class Publisher:
    """A kafka-python producer with ``acks=all`` and idempotence; every message carries trace context."""

    def __init__(self, settings: Settings, *, client_id: str = "crm") -> None:
        self._partitioner = KeyHashPartitioner()
        self._producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            # Every caller waits for its messages' acknowledgement right after handing them over (a batch's
            # relay, an ingestion request), so the linger is added to every send: 1 ms instead of 5 took a
            # relay of 60 messages from 8 to 3 ms against the embedded broker at the same CPU (300: 13.6 to
            # 12.8 ms); a send that outlasts it is split into more requests, as it was with 5 ms.
            linger_ms=1,
            # Large batches: one produce request per partition per relay instead of one per 16 KB, and
            # far fewer wake-ups of the sender thread (each costs a GIL hand-off).
            batch_size=256 * 1024,
            retries=2**31 - 1,
            max_in_flight_requests_per_connection=5,
            # A dead letter is the consumed message unchanged, and the broker took that message: the limit
            # must not refuse what it accepted (events over CRM_MAX_EVENT_BYTES are dead-lettered whole).
            max_request_size=_MAX_REQUEST_BYTES,
            # Bounded waits: a broker that takes connections but answers nothing must fail a publish in
            # time (HTTP ingestion answers 503, the relay retries), not hang it for a minute.
            max_block_ms=int(settings.publish_timeout_s * 1000),
            partitioner=self._partitioner,
        )
        self._timeout_s = settings.publish_timeout_s
        self._packed_topics = frozenset(settings.topic(t) for t in PACKED_TOPICS)

    def send(self, messages: Sequence[Sendable], *, timeout_s: float | None = None) -> None:
        """Publish and wait until the broker has acknowledged every message.

        A message that already carries trace context (an outbox message: its "create" span was made
        when the event that caused it was handled) keeps it, and the relay is one "send" span linked
        to those messages. Any other message is sent through the OpenTelemetry Kafka instrumentation,
        which gives it a send span of its own in the current trace.
        """
        carried, fresh = [], []
        for m in messages:
            (carried if any(h[0] in TRACE_HEADERS for h in m.headers) else fresh).append(m)
        futures = []
        if carried:
            links = [Link(ctx) for ctx in linked_contexts(m.headers for m in carried[:128])]
            topics_sent = sorted({m.topic for m in carried})
            with _tracer.start_as_current_span(
                f"send {topics_sent[0] if len(topics_sent) == 1 else 'batch'}", kind=SpanKind.PRODUCER, links=links,
                attributes={"messaging.system": "kafka", "messaging.operation.type": "send",
                            "messaging.batch.message_count": len(carried),
                            "messaging.destination.name": ",".join(topics_sent)}):
                raw_send = _uninstrumented_send()
                for partition, members in packed(carried, self._partition_of):
                    if partition is None:
                        m = members[0]
                        futures.append(raw_send(self._producer, m.topic, value=m.value, key=m.key,
                                                headers=list(m.headers)))
                    else:
                        value = pack([(m.key, m.headers, m.value) for m in members])
                        futures.append(raw_send(self._producer, members[0].topic, value=value, partition=partition,
                                                headers=[(PACK_HEADER, VERSION)]))
        for m in fresh:
            headers = list(m.headers) if kafka_instrumented() else inject_headers(list(m.headers))
            futures.append(self._producer.send(m.topic, value=m.value, key=m.key, headers=headers))
        timeout_s = timeout_s or self._timeout_s
        deadline = time.monotonic() + timeout_s
        # Waits for these messages only: a flush would wait for every request's records (and the relay's),
        # so one slow partition would fail every concurrent caller.
        for fut in futures:
            fut.get(timeout=max(0.1, deadline - time.monotonic()))

    def _partition_of(self, topic: str, key: bytes | None) -> int | None:
        """Where the producer would put a keyed message on a packed topic whose partitions it knows; else None."""
        if topic not in self._packed_topics or not isinstance(key, bytes):
            return None
        partitions = self._producer.partitions_for(topic)
        return self._partitioner.choose(key, partitions) if partitions else None

    def close(self) -> None:
        """Flush and close the producer."""
        self._producer.close(timeout=10)


def _uninstrumented_send():
    # The instrumentation wraps KafkaProducer.send (wrapt keeps the original as __wrapped__); messages
    # that carry their own context must not get a second producer span each.
    return getattr(KafkaProducer.send, "__wrapped__", KafkaProducer.send)


def faust_app(name: str, settings: Settings, **overrides):
    """A faust app tuned for this platform: raw values, short joins, no web server of its own."""
    import faust  # imported here so importing this module starts nothing

    options = dict(
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        web_enabled=False,
        topic_disable_leader=True,
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        # Messages (packs among them) an agent may hold unprocessed: 4,096 by default, which with packs of up to
        # 64 KB (``shared.streaming.packs``) would let a consumer far behind prefetch 256 MB. A batch is at most
        # ``CRM_BATCH_SIZE`` (1,000) messages, so this still holds a full batch while the previous one runs.
        stream_buffer_maxsize=1024,
        producer_acks=-1,
        Monitor="shared.streaming.faust_transport:LeanMonitor",
        datadir=f"{settings.data_dir}/faust-{name}",
    )
    options.update(overrides)
    app = faust.App(f"{settings.topic_prefix}{name}", **options)
    from shared.streaming.faust_transport import use_short_fetch_wait

    use_short_fetch_wait(app, settings.fetch_max_wait_ms)
    return app


def faust_worker(app, loglevel: str):
    """A faust worker for ``app`` logging at ``loglevel``, without faust's start-up spinner.

    At WARNING or above faust sets up a terminal spinner that turns on every log record: it puts the root
    logger at DEBUG for good, so every debug call of kafka-python and aiokafka (one per message sent) built
    a record that was then dropped, a tenth of a bare consumer's CPU.
    """
    from faust import Worker

    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None
    return worker


def lazy_publisher(settings: Settings, name: str):
    """A publish callable whose producer connects on first use (nothing connects at build time)."""
    import threading

    holder: list[Publisher] = []
    lock = threading.Lock()

    def publish(messages: Sequence[Sendable]) -> None:
        with lock:
            if not holder:
                holder.append(Publisher(settings, client_id=f"crm-{name}"))
        holder[0].send(messages)

    return publish


def broker_reachable(settings: Settings) -> None:
    """Raise unless the first bootstrap address accepts a connection (for ``/readyz``)."""
    import socket

    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
        pass
