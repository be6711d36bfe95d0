"""Issue 13: what tracing costs per message. A message's span computes its attributes only when it records,
carries only what the batch's span does not, and the span file writes each span once, redacted."""

from __future__ import annotations

import json

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.observability.telemetry import JsonLinesSpanExporter, read_spans
from shared.streaming import batch as batch_module
from shared.streaming.batch import Incoming, message_span

SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
NOT_SAMPLED = "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-00"


def _provider(exporter):
    provider = TracerProvider(resource=Resource.create({"service.name": "crm-loyalty"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _message(traceparent: str, offset: int = 7) -> Incoming:
    headers = [("crm.other", b"x"), ("traceparent", traceparent.encode())]
    return Incoming(b"{}", "crm.customer.events", 2, offset, headers)


def test_a_message_span_continues_its_trace_and_computes_its_attributes_only_when_it_records(monkeypatch):
    exporter = InMemorySpanExporter()
    monkeypatch.setattr(batch_module, "_tracer", _provider(exporter).get_tracer("test"))
    calls = []

    def attributes():
        calls.append(1)
        return {"crm.event.id": "T-1", "crm.customer_id": "c_1"}

    with message_span("loyalty", _message(NOT_SAMPLED), attributes):
        pass
    assert calls == [] and exporter.get_finished_spans() == ()
    with message_span("loyalty", _message(SAMPLED), attributes):
        pass
    [span] = exporter.get_finished_spans()
    assert calls == [1]
    assert format(span.context.trace_id, "032x") == SAMPLED.split("-")[1]
    assert format(span.parent.span_id, "016x") == SAMPLED.split("-")[2]
    assert dict(span.attributes) == {"messaging.destination.name": "crm.customer.events",
                                     "messaging.destination.partition.id": "2", "messaging.kafka.offset": 7,
                                     "crm.event.id": "T-1", "crm.customer_id": "c_1"}


def test_the_span_file_holds_each_span_once_with_phones_masked_even_in_values_seen_before(tmp_path):
    path = tmp_path / "traces.jsonl"
    tracer = _provider(JsonLinesSpanExporter(path)).get_tracer("test")
    for i in range(3):
        with tracer.start_as_current_span("loyalty process crm.customer.events",
                                          attributes={"crm.note": "call 13812345678", "crm.event.id": f"T-{i}",
                                                      "url.query": "phone=13812345678&x=1", "n": i}):
            pass
    lines = path.read_text().splitlines()
    assert "13812345678" not in path.read_text()
    spans = [json.loads(line) for line in lines]
    assert spans == read_spans(path) and len(spans) == 3
    assert [s["attributes"] for s in spans] == [
        {"crm.note": "call [redacted]", "crm.event.id": f"T-{i}", "url.query": "phone=[redacted]&x=[redacted]", "n": i}
        for i in range(3)]
    assert {(s["kind"], s["service"], s["status"], s["parent_id"]) for s in spans} == {
        ("INTERNAL", "crm-loyalty", "UNSET", None)}


def _sampler_of(monkeypatch, tmp_path, env: dict[str, str]):
    from opentelemetry import trace

    from shared.observability import telemetry
    from shared.settings import Settings

    for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED", "CRM_TRACE_RATIO"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    installed = []
    monkeypatch.setattr(telemetry, "_done", False)
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)
    monkeypatch.setattr(telemetry, "instrument_libraries", lambda: None)
    telemetry.setup_tracing("loyalty", Settings(_env_file=None, data_dir=str(tmp_path)))
    return installed[0].sampler.get_description()


def test_the_embedded_default_traces_one_event_in_ten_and_crm_trace_ratio_1_traces_every_event(monkeypatch, tmp_path):
    assert _sampler_of(monkeypatch, tmp_path, {}) == "ParentBased{root:TraceIdRatioBased{0.1},remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}"  # noqa: E501
    assert "TraceIdRatioBased{1.0}" in _sampler_of(monkeypatch, tmp_path, {"CRM_TRACE_RATIO": "1"})
    # The standard variables still decide when they are set.
    assert _sampler_of(monkeypatch, tmp_path, {"OTEL_TRACES_SAMPLER": "always_on"}) == "AlwaysOnSampler"
