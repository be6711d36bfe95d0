"""One purchase posted over HTTP makes one trace: the ingestion route, then every service that consumed
it, through the real broker's message headers, down to the store transaction and the messages sent.

The services run in this process so an in-memory span exporter sees every span: each service is
built with ``create_app`` against the test's broker, and its consumers (exactly the handlers its faust
agents run) are fed by plain Kafka consumers, batch by batch through the service's own BatchRunner.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm.platform import SERVICES, available_services
from shared.batch import Incoming
from shared.kafka import ensure_topics
from shared.settings import Settings
from shared.telemetry import instrument_libraries
from tests.conftest import wait_for

pytestmark = pytest.mark.broker

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    instrument_libraries()
    return _EXPORTER


class InProcess:
    """A service built against the test's broker, its consumers fed by kafka-python."""

    def __init__(self, name: str, settings: Settings) -> None:
        import importlib

        self.name = name
        self.service = importlib.import_module(f"services.{name}.app").create_app(settings)
        self.service.faust_app()  # registers its agents, which declare what they consume
        topics = sorted({t for _, names, _ in self.service.runner.consumers for t in names})
        self.handles = {t: h for _, names, h in self.service.runner.consumers for t in names}
        # Every partition assigned directly: no consumer group to join (a join takes seconds on this broker).
        self.consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                      auto_offset_reset="earliest", enable_auto_commit=False)
        self.consumer.assign([TopicPartition(t, p) for t in topics for p in range(settings.topic_partitions)])

    def pump(self) -> int:
        """Handle whatever is waiting, one batch per topic, as the agents would."""
        handled = 0
        for records in self.consumer.poll(timeout_ms=100).values():
            by_topic: dict[str, list[Incoming]] = defaultdict(list)
            for r in records:
                by_topic[r.topic].append(Incoming(r.value, r.topic, r.partition, r.offset, list(r.headers), r.key,
                                                  r.timestamp / 1000))
            for topic, batch in by_topic.items():
                self.service.runner.run_sync(self.handles[topic], batch)
                handled += len(batch)
        return handled


def test_a_purchase_posted_over_http_is_one_trace_through_every_service(broker, tmp_path, spans):
    assert available_services() == list(SERVICES), "every service takes part in the trace"
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path), api_keys="k:admin",
                        pseudonym_secret="trace-test-secret-0123456789")
    ensure_topics(settings)
    services = {name: InProcess(name, settings) for name in SERVICES}
    event_id = f"trace-{uuid.uuid4().hex[:8]}"
    event = {"specversion": "1.0", "id": event_id, "source": "pos/SH-001", "type": "crm.purchase",
             "time": "2026-11-20T10:15:00+08:00",
             "data": {"identity": {"phone": "138 0013 8000"}, "order_id": event_id, "amount": "268.00",
                      "currency": "CNY", "store_id": "SH-001",
                      "items": [{"sku": "SK-01", "category": "skincare", "quantity": 1, "unit_price": "268.00"}]}}
    with TestClient(services["identity"].service.api) as client:
        r = client.post("/v1/events", json=event, headers={"Authorization": "Bearer k"})
    assert r.status_code == 202, r.text

    def consumed_everywhere() -> bool:
        for svc in services.values():
            svc.pump()
        names = {s.name for s in spans.get_finished_spans()}
        downstream = [name for name in SERVICES if name != "identity"]
        return any(n.startswith("identity process crm.channel") for n in names) and all(
            any(n.startswith(f"{name} process crm.") for n in names) for name in downstream)

    wait_for(consumed_everywhere, timeout=60, interval=0.05, what="every service to process the purchase")

    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    http = [s for s in finished if s.kind == trace.SpanKind.SERVER and "/v1/events" in s.name]
    assert len(http) == 1
    trace_id = http[0].context.trace_id

    def ancestors(span) -> list:
        chain = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            chain.append(span)
        return chain

    # Every service's span for this event is in the request's trace, beneath the request.
    for name in SERVICES:
        mine = [s for s in finished if s.name.startswith(f"{name} process crm.")
                and s.context.trace_id == trace_id]
        assert mine, f"no {name} span in the request's trace"
        for span in mine:
            assert http[0] in ancestors(span), f"{span.name} is not beneath the ingestion request"
            # Continued from a message: its parent is the span that sent that message.
            assert by_id[span.parent.span_id].kind == trace.SpanKind.PRODUCER
            # Linked to the store transaction its batch wrote in.
            linked = [by_id.get(link.context.span_id) for link in span.links]
            assert any(s is not None and s.name in ("sqlite.transaction", "mongodb.transaction") for s in linked)
    identity_span = next(s for s in finished if s.name.startswith("identity process crm.channel")
                         and s.context.trace_id == trace_id)
    assert identity_span.attributes["crm.event.id"] == event_id
    assert identity_span.attributes["crm.event.type"] == "crm.purchase"
    assert identity_span.attributes["crm.channel"] == "pos"
    assert identity_span.attributes["crm.customer_id"].startswith("c_")
    # The ingestion route's message is sent inside the request's trace (the Kafka instrumentation's span);
    # each message identity writes to its outbox is created inside the event's trace, and the relay's
    # send span links to it.
    sends = [s for s in finished if s.kind == trace.SpanKind.PRODUCER and s.context.trace_id == trace_id]
    assert "crm.channel.pos" in {s.attributes.get("messaging.destination") for s in sends}
    created = {s.attributes.get("messaging.destination.name"): s for s in sends
               if s.attributes.get("messaging.operation.type") == "create"
               and s.parent.span_id == identity_span.context.span_id}
    assert "crm.customer.events" in created
    relays = [s for s in finished if s.attributes.get("messaging.operation.type") == "send"
              and any(link.context.span_id == created["crm.customer.events"].context.span_id for link in s.links)]
    assert len(relays) == 1
    # No span of the trace names the phone in any notation.
    blob = json.dumps([dict(s.attributes) for s in finished if s.context.trace_id == trace_id], default=str)
    for notation in ("13800138000", "138 0013 8000", "138-0013-8000", "8613800138000"):
        assert notation not in blob
    for svc in services.values():
        svc.consumer.close()
