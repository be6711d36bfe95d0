"""One purchase posted over HTTP makes one trace: the ingestion route, then every service that consumed
it, through the real broker's message headers, down to the store transaction and the messages sent.

The services run in this process so an in-memory span exporter sees every span
(``tests.integration.platform_in_process``): each service is built with ``create_app`` against the
test's broker, and its consumers (exactly the handlers its faust agents run) are fed by plain Kafka
consumers, batch by batch through the service's own BatchRunner.

The sampler is ``crm up``'s at ``CRM_TRACE_RATIO=0``: nothing is traced on its own, so the purchase is traced
because its client's trace context says so, and each service's batch span because it holds that purchase.
"""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm.platform import SERVICES, available_services
from shared.observability.telemetry import LinksOrParentBased, instrument_libraries
from shared.settings import Settings
from shared.streaming.kafka import ensure_topics
from tests.integration.flows.support import new_id
from tests.integration.platform_in_process import Platform

pytestmark = pytest.mark.broker

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    provider = TracerProvider(sampler=LinksOrParentBased(0.0))
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    instrument_libraries()
    return _EXPORTER


CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"


def _platform(broker, tmp_path) -> Platform:
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path), api_keys="k:admin",
                        pseudonym_secret="trace-test-secret-0123456789")
    ensure_topics(settings)
    return Platform(settings, clocks={})  # every service on the system clock


def _purchase(event_id: str) -> dict:
    return {"specversion": "1.0", "id": event_id, "source": "pos/SH-001", "type": "crm.purchase",
            "time": "2026-11-20T10:15:00+08:00",
            "data": {"identity": {"phone": "138 0013 8000"}, "order_id": event_id, "amount": "268.00",
                     "currency": "CNY", "store_id": "SH-001",
                     "items": [{"sku": "SK-01", "category": "skincare", "quantity": 1, "unit_price": "268.00"}]}}


def test_a_purchase_posted_over_http_is_one_trace_through_every_service(broker, tmp_path, spans):
    assert available_services() == list(SERVICES), "every service takes part in the trace"
    platform = _platform(broker, tmp_path)
    event_id = new_id("trace")  # letters only: never a phone-like run
    event = _purchase(event_id)
    r = platform["identity"].api("k").post("/v1/events", json=event,
                                           headers={"traceparent": f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"})
    assert r.status_code == 202, r.text

    def consumed_everywhere() -> bool:
        names = {s.name for s in spans.get_finished_spans()}
        downstream = [name for name in SERVICES if name != "identity"]
        return any(n.startswith("identity process crm.channel") for n in names) and all(
            any(n.startswith(f"{name} process crm.") for n in names) for name in downstream)

    platform.pump_until(consumed_everywhere, timeout=60, what="every service to process the purchase")

    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    http = [s for s in finished if s.kind == trace.SpanKind.SERVER and "/v1/events" in s.name]
    assert len(http) == 1
    trace_id = http[0].context.trace_id
    assert f"{trace_id:032x}" == CLIENT_TRACE

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
            [store] = [s for s in linked if s is not None and s.name in ("sqlite.transaction", "mongodb.transaction")]
            # That transaction is its batch's store work, beneath the batch's span, which links to this
            # event's message: the trace shows the batch's work, commit and relay in every service.
            batch = by_id[store.parent.span_id]
            assert batch.name == f"{name} process batch" and batch.parent is None
            assert span.parent.span_id in {link.context.span_id for link in batch.links}
            relayed = [s for s in finished if s.parent is not None and s.parent.span_id == batch.context.span_id
                       and s.attributes.get("messaging.operation.type") == "send"]
            assert relayed or name != "identity", "identity's batch did not relay the resolved purchase"
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
    platform.close()


def test_an_event_not_traced_leaves_no_batch_span_in_any_service(broker, tmp_path, spans):
    platform = _platform(broker, tmp_path)
    spans.clear()
    r = platform["identity"].api("k").post("/v1/events", json=_purchase(new_id("untraced")))
    assert r.status_code == 202, r.text
    platform.pump_until(lambda: platform.published["crm.customer.events"] > 0, timeout=60, what="the purchase resolved")
    platform.settle(timeout=60)
    assert {s.name for s in spans.get_finished_spans()} == set()  # CRM_TRACE_RATIO=0: nothing at all
    platform.close()
