"""Issue 13: what tracing costs per message. A message's span computes its attributes only when it records,
carries only what the batch's span does not, and the span file writes each span once, redacted."""

from __future__ import annotations

import json

import pytest
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
    assert _sampler_of(monkeypatch, tmp_path, {}) == "LinksOrParentBased{ParentBased{root:TraceIdRatioBased{0.1},remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}}"  # noqa: E501
    assert "TraceIdRatioBased{1.0}" in _sampler_of(monkeypatch, tmp_path, {"CRM_TRACE_RATIO": "1"})
    # The standard variables still decide when they are set.
    assert _sampler_of(monkeypatch, tmp_path, {"OTEL_TRACES_SAMPLER": "always_on"}) == "AlwaysOnSampler"


# -- session 22: a message sampled out upstream costs neither the sampler nor a second parse of its headers --

TRACESTATE = b"crm=t1"


def _installed(monkeypatch, sampler):
    """An SDK provider installed as the process's (``trace.get_tracer_provider()`` answers it), its sampler's
    decisions counted; returns the exporter and the count."""
    from opentelemetry import trace

    exporter, asked = InMemorySpanExporter(), []
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    decide = provider.sampler.should_sample
    monkeypatch.setattr(provider.sampler, "should_sample", lambda *a, **kw: asked.append(1) or decide(*a, **kw))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    monkeypatch.setattr(batch_module, "_tracer", provider.get_tracer("test"))
    return exporter, asked, provider


def _with_state(traceparent: str, offset: int = 7) -> Incoming:
    msg = _message(traceparent, offset)
    return Incoming(msg.value, msg.topic, msg.partition, msg.offset, [*msg.headers, ("tracestate", TRACESTATE)])


@pytest.mark.parametrize("with_state", [True, False], ids=["with a tracestate", "a traceparent alone"])
@pytest.mark.parametrize("crm_trace_ratio", [True, False], ids=["CRM_TRACE_RATIO's", "the SDK's parent-based"])
def test_a_message_sampled_out_upstream_gets_the_span_the_sdk_would_make_without_asking_the_sampler(
        monkeypatch, crm_trace_ratio, with_state):
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from shared.observability.telemetry import LinksOrParentBased
    from shared.observability.trace_context import extract_context, message_headers

    sampler = LinksOrParentBased(0.1) if crm_trace_ratio else ParentBased(TraceIdRatioBased(0.1))
    exporter, asked, provider = _installed(monkeypatch, sampler)
    msg, calls = (_with_state if with_state else _message)(NOT_SAMPLED), []
    sdk = provider.get_tracer("sdk").start_span("n", context=extract_context(msg.headers)).get_span_context()
    asked.clear()
    with message_span("loyalty", msg, lambda: calls.append(1) or {}) as span:
        made = span.get_span_context()
        [(_, sent)] = [h for h in message_headers("crm.loyalty.events") if h[0] == "traceparent"]
    assert asked == [] and calls == [] and exporter.get_finished_spans() == ()
    assert not span.is_recording()
    assert (made.trace_id, made.trace_flags, made.trace_state, made.is_remote) == (
        sdk.trace_id, sdk.trace_flags, sdk.trace_state, sdk.is_remote)
    assert made.span_id not in (0, int(NOT_SAMPLED.split("-")[2], 16))
    # What the message sends on carries its trace, still sampled out, so the services after it skip it too.
    assert sent.decode() == f"00-{NOT_SAMPLED.split('-')[1]}-{made.span_id:016x}-00"
    if with_state:
        assert dict(message_headers("crm.loyalty.events", key="c_1")).get("tracestate") is None  # outside the span
    with message_span("loyalty", _with_state(SAMPLED), lambda: calls.append(1) or {}):
        pass
    assert len(exporter.get_finished_spans()) == 1 and calls == [1]


def test_a_sampler_that_does_not_follow_its_parent_still_decides_for_a_message_sampled_out_upstream(monkeypatch):
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    exporter, asked, _ = _installed(monkeypatch, ALWAYS_ON)  # OTEL_TRACES_SAMPLER=always_on
    with message_span("loyalty", _message(NOT_SAMPLED), {"crm.event.id": "T-1"}):
        pass
    [span] = exporter.get_finished_spans()
    assert asked == [1] and span.attributes["crm.event.id"] == "T-1"
    assert format(span.context.trace_id, "032x") == NOT_SAMPLED.split("-")[1]


def test_a_batch_reads_each_message_s_trace_headers_once_for_its_own_span_and_the_message_s(monkeypatch):
    from opentelemetry import propagate
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased


    _installed(monkeypatch, ParentBased(TraceIdRatioBased(0.1)))
    textmap, parsed = propagate.get_global_textmap(), []

    class Counting:
        fields = textmap.fields

        def extract(self, carrier, context=None, getter=None):
            parsed.append(carrier["traceparent"])
            return textmap.extract(carrier, context) if getter is None else textmap.extract(carrier, context, getter)

        def inject(self, carrier, context=None, setter=None):
            return textmap.inject(carrier, context) if setter is None else textmap.inject(carrier, context, setter)

    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", Counting())
    parents = [f"00-{n:032x}-{n:016x}-0{n % 2}" for n in range(1, 7)]
    batch = [_message(p, offset=n) for n, p in enumerate(parents)]

    _runner("svc-s22d").run_sync(_spans_each_message, batch)
    assert sorted(parsed) == sorted(parents)


class _Outcome:
    outbox: list = []


def _spans_each_message(messages) -> _Outcome:
    """A batch handler that only gives each message its span, as every service's handler does."""
    for m in messages:
        with message_span("loyalty", m, {}):
            pass
    return _Outcome()


def _runner(name: str, metrics: str | None = None):
    """A BatchRunner that publishes nothing (``metrics``: its own metrics' name, one per test)."""
    from shared.observability.metrics import ServiceMetrics
    from shared.streaming.consumer import BatchRunner

    return BatchRunner(name=name, metrics=ServiceMetrics(metrics or name), publish=lambda out: None,
                       delete_outbox=lambda seqs: None)


def _read_by_the_propagators(value: bytes):
    from opentelemetry import propagate, trace

    ctx = propagate.extract({"traceparent": value.decode("latin-1")})
    return trace.get_current_span(ctx).get_span_context(), dict(ctx)


def test_a_traceparent_read_without_the_propagators_reads_exactly_as_they_do():
    import random

    from opentelemetry import trace

    from shared.observability.trace_context import _traceparent, extract_context

    assert _traceparent(SAMPLED.encode()) is not None  # the canonical form is read here, not by the propagators
    rng = random.Random(22)
    tid, sid = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    values = [f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-{f:02x}" for f in (0, 1, 2, 3, 255)
              for _ in range(20)]
    values += [SAMPLED, NOT_SAMPLED, f"00-{'0' * 32}-{sid}-01", f"00-{tid}-{'0' * 16}-01", f"00-{tid.upper()}-{sid}-01",
               f"ff-{tid}-{sid}-01", f"01-{tid}-{sid}-01", f"01-{tid}-{sid}-01-future", f"00-{tid}-{sid}-01-x",
               f" 00-{tid}-{sid}-01", f"00-{tid}-{sid}-01 ", f"00-{tid}-{sid}-0g", f"00-{tid[:-1]}g-{sid}-01",
               f"00_{tid}-{sid}-01", f"00-{tid}_{sid}-01", f"00-{tid}-{sid}_01", f"00-{tid[:8]}_{tid[9:]}-{sid}-01",
               f"00-{tid}-{sid}-1", "", "garbage", f"00-{tid}-{sid}-01é"]
    for value in values:
        raw = value.encode()
        got = extract_context([("traceparent", raw)])
        made = trace.get_current_span(got).get_span_context()
        expected, expected_items = _read_by_the_propagators(raw)
        assert (made.trace_id, made.span_id, made.trace_flags, made.is_remote, made.trace_state, made.is_valid) == (
            expected.trace_id, expected.span_id, expected.trace_flags, expected.is_remote, expected.trace_state,
            expected.is_valid), value
        assert dict(got).keys() == expected_items.keys(), value


# -- session 23: a batch's span is traced whenever one of its events is --


def _run_batch(monkeypatch, sampler, traceparents: list[str]):
    """Run a batch of messages carrying these trace contexts through a BatchRunner under this sampler;
    returns the finished spans."""
    from shared.streaming import consumer

    exporter, _, provider = _installed(monkeypatch, sampler)
    monkeypatch.setattr(consumer, "_tracer", provider.get_tracer("test"))

    _runner("loyalty", "svc-s23f").run_sync(_spans_each_message,
                                            [_message(p, offset=n) for n, p in enumerate(traceparents)])
    return exporter.get_finished_spans()


def _unsampled(n: int) -> str:
    return f"00-{n + 1:032x}-{n + 1:016x}-00"


def test_a_batch_holding_a_traced_event_is_in_that_event_s_trace_even_past_the_links_limit(monkeypatch):
    from shared.observability.telemetry import LinksOrParentBased
    from shared.streaming.consumer import _MAX_LINKS

    # Ratio 0: no batch is sampled on its own; the traced event sits after the SDK's limit of links.
    contexts = [_unsampled(n) for n in range(_MAX_LINKS + 72)]
    contexts[_MAX_LINKS + 50] = SAMPLED
    spans = _run_batch(monkeypatch, LinksOrParentBased(0.0), contexts)
    [batch] = [s for s in spans if s.name == "loyalty process batch"]
    [event] = [s for s in spans if s.name == "loyalty process crm.customer.events"]
    assert format(event.context.trace_id, "032x") == SAMPLED.split("-")[1]
    assert [link.context.span_id for link in event.links] == [batch.context.span_id]
    # Linked to the traced event only: the others' traces are recorded nowhere.
    assert [format(link.context.trace_id, "032x") for link in batch.links] == [SAMPLED.split("-")[1]]
    assert batch.attributes["messaging.batch.message_count"] == len(contexts)


def test_a_batch_of_untraced_events_stays_untraced_and_the_standard_sampler_variable_still_decides(monkeypatch,
                                                                                                  tmp_path):
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from shared.observability.telemetry import LinksOrParentBased, default_sampler
    from shared.settings import Settings

    assert _run_batch(monkeypatch, LinksOrParentBased(0.0), [_unsampled(n) for n in range(300)]) == ()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    assert default_sampler(Settings(_env_file=None, data_dir=str(tmp_path))) is None  # the SDK reads the variable
    assert _run_batch(monkeypatch, ALWAYS_OFF, [SAMPLED, _unsampled(1)]) == ()


def test_a_root_span_is_sampled_by_its_links_only_when_it_has_no_parent():
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import Decision
    from opentelemetry.trace import Link

    from shared.observability.telemetry import LinksOrParentBased
    from shared.observability.trace_context import extract_context

    def context(traceparent):
        return extract_context([("traceparent", traceparent.encode())])

    def link(traceparent):
        return Link(trace.get_current_span(context(traceparent)).get_span_context())

    sampler, root = LinksOrParentBased(0.0), trace.set_span_in_context(trace.INVALID_SPAN)
    batch = {"messaging.batch.message_count": 2}

    def decide(context, name, *, links=None, attributes=batch):
        return sampler.should_sample(context, 5, name, attributes=attributes, links=links).decision

    assert decide(root, "b", links=[link(_unsampled(1)), link(SAMPLED)]) is Decision.RECORD_AND_SAMPLE
    assert decide(root, "b", links=[link(_unsampled(1))]) is Decision.DROP
    assert decide(root, "b") is Decision.DROP
    # A message that came without a trace context is a root linked to its batch's store work: not traced
    # because its batch is (every message of a traced batch would be).
    assert decide(root, "m", links=[link(SAMPLED)], attributes={"messaging.destination.name": "t"}) is Decision.DROP
    # A span with a parent follows its parent, whatever it links.
    assert decide(context(NOT_SAMPLED), "m", links=[link(SAMPLED)]) is Decision.DROP
    assert decide(context(SAMPLED), "m") is Decision.RECORD_AND_SAMPLE
    assert LinksOrParentBased(1.0).should_sample(root, 5, "b").decision is Decision.RECORD_AND_SAMPLE


def test_what_a_batch_traced_for_its_events_announces_of_its_own_is_not_traced_for_that(monkeypatch):
    from opentelemetry import trace

    from shared.observability.telemetry import LinksOrParentBased
    from shared.observability.trace_context import message_headers
    from shared.streaming import consumer

    _, _, provider = _installed(monkeypatch, LinksOrParentBased(0.0))
    monkeypatch.setattr(consumer, "_tracer", provider.get_tracer("test"))
    sent = {}

    def handle(messages):
        for m in messages:
            with message_span("loyalty", m, {}):
                sent[m.offset] = dict(message_headers("crm.loyalty.events"))["traceparent"].decode()
        assert trace.get_current_span().is_recording()  # the batch's span: it holds a traced event
        sent["batch"] = dict(message_headers("crm.loyalty.events"))["traceparent"].decode()
        return _Outcome()

    _runner("loyalty", "svc-s23f2").run_sync(handle, [_message(SAMPLED, offset=0), _message(_unsampled(1), offset=1)])
    assert sent[0].split("-")[1] == SAMPLED.split("-")[1] and sent[0].endswith("-01")  # the traced event's
    assert sent[1].endswith("-00") and sent["batch"].endswith("-00")  # the ratio (0) decides for the rest


def test_what_settles_of_a_batch_share_is_what_each_of_their_messages_would_carry(monkeypatch):
    # Session 26: loyalty makes the headers of a batch's settles once; each message carries what it would alone.
    from shared.observability.telemetry import LinksOrParentBased
    from shared.observability.trace_context import message_headers, shared_headers
    from shared.streaming import consumer

    _, _, provider = _installed(monkeypatch, LinksOrParentBased(0.0))
    monkeypatch.setattr(consumer, "_tracer", provider.get_tracer("test"))
    seen = {}

    def handle(messages):
        with message_span("loyalty", messages[0], {}):  # a traced event's own span: each message marks itself
            seen["traced"] = shared_headers()
        with message_span("loyalty", messages[1], {}):  # sampled out upstream
            seen["untraced"] = (shared_headers(), message_headers("crm.loyalty.events"))
        seen["batch"] = (shared_headers(), message_headers("crm.loyalty.events"),
                         message_headers("crm.loyalty.events", key="c1"))
        return _Outcome()

    _runner("loyalty", "svc-s26l").run_sync(handle, [_message(SAMPLED, offset=0), _message(_unsampled(1), offset=1)])
    assert seen["traced"] is None
    shared, alone = seen["untraced"]
    assert shared == alone and dict(shared)["traceparent"].decode().endswith("-00")
    shared, alone, keyed = seen["batch"]
    assert shared == alone == keyed and dict(shared)["traceparent"].decode().endswith("-00")


# -- session 24: a message sampled out upstream is told by its traceparent alone, and what it publishes carries
# -- a traceparent written without the propagators; anything else still goes through the SDK --


def _sent_as_the_propagators_would(span_context, *, with_baggage: bool = False):
    """What ``message_headers`` writes under a non-recording span with this context, and what the configured
    propagators write for it."""
    from opentelemetry import baggage, propagate, trace
    from opentelemetry import context as otel_context

    from shared.observability.trace_context import inject_headers, message_headers

    context = trace.set_span_in_context(trace.NonRecordingSpan(span_context))
    if with_baggage:
        context = baggage.set_baggage("crm.run", "r1", context)
    expected: dict[str, str] = {}
    propagate.inject(expected, context=context)
    given = [("crm.kind", b"view.part"), ("traceparent", b"given")]
    token = otel_context.attach(context)
    try:
        sent = message_headers("crm.loyalty.events", given)
        injected = inject_headers()
    finally:
        otel_context.detach(token)
    assert dict(injected) == {k: v.encode() for k, v in expected.items()}
    return sent, [*(h for h in given if h[0] not in expected), *((k, v.encode()) for k, v in expected.items())]


def test_what_an_unsampled_span_sends_on_is_exactly_what_the_propagators_write():
    import random

    from opentelemetry import trace

    rng = random.Random(24)
    states = [trace.TraceState(), trace.TraceState([("crm", "links")]), trace.TraceState([("a", "1"), ("b", "2")])]
    contexts = [trace.SpanContext(rng.getrandbits(128) or 1, rng.getrandbits(64) or 1, is_remote=remote,
                                  trace_flags=trace.TraceFlags(flags), trace_state=state)
                for flags in (0, 1, 2, 3) for state in states for remote in (False, True)]
    contexts += [trace.INVALID_SPAN_CONTEXT, trace.SpanContext(1, 1, False),
                 trace.SpanContext(2**128 - 1, 2**64 - 1, False), trace.SpanContext(0, 5, False)]
    for ctx in contexts:
        sent, expected = _sent_as_the_propagators_would(ctx)
        assert sent == expected, ctx
    # Baggage in the context: the propagators write it (and the trace context) themselves.
    sent, expected = _sent_as_the_propagators_would(contexts[0], with_baggage=True)
    assert sent == expected and dict(sent)["baggage"] == b"crm.run=r1"


def test_propagators_set_by_otel_propagators_still_read_and_write_every_message(monkeypatch):
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from shared.observability.trace_context import message_headers

    class Named(TraceContextTextMapPropagator):
        """W3C trace context under another header name (as B3 or Jaeger would be: OTEL_PROPAGATORS)."""

        _TRACEPARENT_HEADER_NAME = "x-trace"
        _TRACESTATE_HEADER_NAME = "x-state"

    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", CompositePropagator([Named()]))
    exporter, _, _ = _installed(monkeypatch, ParentBased(TraceIdRatioBased(0.1)))
    # A traceparent is none of these propagators' business: the message starts a trace of its own.
    with message_span("loyalty", _message(NOT_SAMPLED), {}) as span:
        assert span.get_span_context().trace_id != int(NOT_SAMPLED.split("-")[1], 16)
    parent = NOT_SAMPLED.replace("0af7651916cd43dd", "1bf7651916cd43dd")
    msg = Incoming(b"{}", "crm.customer.events", 2, 8, [("x-trace", parent.encode())])
    with message_span("loyalty", msg, {}) as span:
        assert not span.is_recording()
        assert span.get_span_context().trace_id == int(parent.split("-")[1], 16)
        sent = dict(message_headers("crm.loyalty.events"))
    assert "traceparent" not in sent
    assert sent["x-trace"].decode() == f"00-{parent.split('-')[1]}-{span.get_span_context().span_id:016x}-00"
    assert isinstance(trace.get_current_span(), trace.NonRecordingSpan)


def test_a_batch_makes_a_context_only_for_its_traced_messages_and_each_keeps_its_trace(monkeypatch):
    from opentelemetry import trace

    from shared.observability import trace_context
    from shared.observability.telemetry import LinksOrParentBased
    from shared.streaming import consumer

    exporter, _, provider = _installed(monkeypatch, LinksOrParentBased(0.0))
    monkeypatch.setattr(consumer, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(trace_context, "_TRACER", provider.get_tracer("test"))
    read, parse = [], trace_context._traceparent
    monkeypatch.setattr(trace_context, "_traceparent", lambda value: read.append(value.decode()) or parse(value))
    # Unique ids: the contexts parsed by earlier tests are remembered.
    parents = [f"00-{0x24d << 64 | n:032x}-{n + 1:016x}-0{2 * (n % 2) + (n % 5 == 0)}" for n in range(12)]
    sent = {}

    def handle(messages):
        for m in messages:
            with message_span("loyalty", m, {}) as span:
                sent[m.offset] = (span, dict(message_headers("crm.loyalty.events"))["traceparent"].decode())
        return _Outcome()

    from shared.observability.trace_context import message_headers

    _runner("loyalty", "svc-s24d").run_sync(handle, [_message(p, offset=n) for n, p in enumerate(parents)])
    traced = [p for p in parents if p.endswith(("1", "3"))]
    assert sorted(read) == sorted(traced)  # parsed once each (the batch's links, the message's span); no other
    spans = exporter.get_finished_spans()
    [batch] = [s for s in spans if s.name == "loyalty process batch"]
    assert sorted(f"{link.context.trace_id:032x}" for link in batch.links) == sorted(p[3:35] for p in traced)
    creates = {s.context.span_id: s for s in spans if s.name == "create crm.loyalty.events"}
    for n, parent in enumerate(parents):
        span, out = sent[n]
        context = span.get_span_context()
        assert context.trace_id == int(parent[3:35], 16) and context.span_id != int(parent[36:52], 16)
        assert out.startswith(f"00-{parent[3:35]}-")  # the same trace, in every service after this one
        if parent in traced:  # through the message's span and the "create" span marking what it publishes
            assert creates[int(out[36:52], 16)].parent.span_id == context.span_id and out.endswith(("1", "3"))
        else:  # still sampled out (its "random trace id" flag kept), sent on from this message's own span
            assert out == f"00-{parent[3:35]}-{context.span_id:016x}-{parent[-2:]}", parent
        assert (context.span_id in {s.context.span_id for s in spans}) == (parent in traced)  # recorded or not
    assert trace.get_current_span() is trace.INVALID_SPAN
