"""W3C trace context carried in Kafka message headers, and the spans and attributes that mark messages.

Nothing here sets OpenTelemetry up: that is :mod:`shared.observability.telemetry`, once per process.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context

Headers = list[tuple[str, bytes]]
_TRACER = trace.get_tracer(__name__)
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


def message_headers(topic: str, headers: Headers | None = None, *, key: str | None = None) -> Headers:
    """Headers for one message written to an outbox: a "create" span marks the message in the current
    trace (the messaging conventions' way to give each message of a batch send its own context), and
    that span's context travels with the message, so its consumers continue this trace."""
    context = otel_context.get_current()
    current = trace.get_current_span(context)
    carrier = _unmarked(current, context)
    if carrier is None:
        attributes = {"messaging.system": "kafka", "messaging.operation.type": "create",
                      "messaging.operation.name": "create", "messaging.destination.name": topic}
        if key is not None:
            attributes["messaging.kafka.message.key"] = key  # keys are customer pseudonyms, never a phone
        span = _TRACER.start_span(f"create {topic}", kind=trace.SpanKind.PRODUCER, attributes=attributes)
        span.end()
        carrier = _injected(span, context)
    out = [h for h in (headers or []) if h[0] not in carrier]
    out.extend((k, v.encode()) for k, v in carrier.items())
    return out


def shared_headers() -> Headers | None:
    """The headers :func:`message_headers` gives each message written in the current context when it makes
    no "create" span for them (the context is not sampled, or traced only for a batch's links): the same for
    every message, so a caller writing several makes them once. None when each message marks itself."""
    context = otel_context.get_current()
    carrier = _unmarked(trace.get_current_span(context), context)
    return None if carrier is None else [(k, v.encode()) for k, v in carrier.items()]


def _unmarked(current: trace.Span, context: otel_context.Context) -> dict[str, str] | None:
    # The carrier of a message written under ``current`` without a "create" span; None: it gets one.
    if not current.is_recording():
        # An event that is not sampled: no span to make, but its context (marked not sampled) still
        # travels, so the services after this one do not sample it either.
        return _injected(current, context)
    if (ctx := current.get_span_context()).trace_state.get("crm") == "links":
        # Batch-level work of a batch traced only for the traced events it holds (LinksOrParentBased): what it
        # announces is not traced for that, as the ratio decided for the batch.
        quiet = trace.SpanContext(ctx.trace_id, ctx.span_id, is_remote=False, trace_flags=trace.TraceFlags(0))
        return _injected(trace.NonRecordingSpan(quiet), context)
    return None


def _injected(span: trace.Span, context: otel_context.Context) -> dict[str, str]:
    # What the configured propagators write for ``span`` in ``context`` (the current one). The default ones (W3C
    # trace context and baggage), given no baggage, write the span's ids as below: written here without their
    # getters, setters and contexts, which cost an event sampled out more than the rest of its tracing, for every
    # message it publishes. Other propagators (OTEL_PROPAGATORS), or baggage, and they write it themselves.
    if _w3c_default(propagate.get_global_textmap()) and not baggage.get_all(context):
        ctx = span.get_span_context()
        if ctx == trace.INVALID_SPAN_CONTEXT:
            return {}
        carrier = {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"}
        if ctx.trace_state:
            carrier["tracestate"] = ctx.trace_state.to_header()
        return carrier
    carrier = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span, context))
    return carrier


def tracer(name: str) -> trace.Tracer:
    """The tracer for one module."""
    return trace.get_tracer(name)


def inject_headers(headers: Headers | None = None) -> Headers:
    """Kafka headers carrying the current trace context (``traceparent``, ``tracestate``)."""
    context = otel_context.get_current()
    carrier = _injected(trace.get_current_span(context), context)
    out = [h for h in (headers or []) if h[0] not in carrier]
    out.extend((k, v.encode()) for k, v in carrier.items())
    return out


def extract_context(headers: Iterable[tuple[str, Any]] | dict | None) -> otel_context.Context:
    """The trace context a consumed message carries (an empty one if none)."""
    if not headers:
        return otel_context.Context()
    items = headers.items() if isinstance(headers, dict) else headers
    textmap = propagate.get_global_textmap()
    fields = _fields(textmap)
    # Only the propagators' own headers are decoded: a message's other headers (dead-letter reasons,
    # say) are none of their business, and this runs for every message consumed.
    carried = tuple((k, v) for k, v in items if k in fields)
    return _extracted(carried, textmap) if carried else otel_context.Context()


@lru_cache(maxsize=4096)
def _extracted(carried: tuple[tuple[str, Any], ...], textmap: Any) -> otel_context.Context:
    # Each consumed message's headers are read twice (the batch's span links to them, the message's own span
    # continues them): parsed once. A context never changes once made, so one can serve both.
    if len(carried) == 1 and carried[0][0] == "traceparent" and _w3c_default(textmap):
        if (context := _traceparent(carried[0][1])) is not None:
            return context
    carrier = {k: (v.decode("latin-1") if isinstance(v, bytes | bytearray) else str(v)) for k, v in carried}
    return propagate.extract(carrier)


_HEX = b"0123456789abcdef"


def _traceparent(value: Any) -> otel_context.Context | None:
    # What the W3C propagators make of a message carrying only a ``traceparent`` in its canonical form (version
    # 00, lower-case hex, no spaces), read without their regular expression and getters (a third of a sampled-out
    # message's tracing cost); ``None`` for any other value, which they read themselves.
    if type(value) is not bytes or len(value) != 55 or value[:3] != b"00-" or value[35] != 45 or value[52] != 45:
        return None  # 45: "-"
    trace_id, span_id, flags = value[3:35], value[36:52], value[53:55]
    if trace_id.translate(None, _HEX) or span_id.translate(None, _HEX) or flags.translate(None, _HEX):
        return None
    ids = int(trace_id, 16), int(span_id, 16)
    if not all(ids):
        return None
    parent = trace.SpanContext(*ids, is_remote=True, trace_flags=trace.TraceFlags(int(flags, 16)))
    return trace.set_span_in_context(trace.NonRecordingSpan(parent), otel_context.Context())


_W3C: list[Any] = [None, False]  # (the text map last asked about, whether it is the default W3C pair)


def _w3c_default(textmap: Any) -> bool:
    # The default propagators (OTEL_PROPAGATORS unset): W3C trace context, then W3C baggage.
    if _W3C[0] is not textmap:
        from opentelemetry.baggage.propagation import W3CBaggagePropagator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        kinds = [type(p) for p in getattr(textmap, "_propagators", ())]
        _W3C[:] = [textmap, kinds == [TraceContextTextMapPropagator, W3CBaggagePropagator]]
    return _W3C[1]


def unsampled_child(context: otel_context.Context) -> trace.Span | None:
    """The span the SDK would start under ``context`` when its sampler drops it for sure, made without the
    SDK; ``None`` when the SDK must decide.

    Most consumed events were sampled out where they entered (``CRM_TRACE_RATIO``), and the default sampler
    (parent-based) drops every span of such a trace: the same non-recording span (the trace's id, flags and
    state, a new span id) is made here without the sampler's and the SDK's work for each message."""
    parent = trace.get_current_span(context).get_span_context()
    if not parent.is_valid or parent.trace_flags.sampled or not _drops_unsampled(trace.get_tracer_provider()):
        return None
    flags = trace.TraceFlags(parent.trace_flags & trace.TraceFlags.RANDOM_TRACE_ID)
    span_id = random.getrandbits(64) or 1  # the SDK's own generator: 64 random bits, never the invalid 0
    return trace.NonRecordingSpan(trace.SpanContext(parent.trace_id, span_id, is_remote=False,
                                                    trace_flags=flags, trace_state=parent.trace_state))


# A traceparent in its canonical form (version 00, lower-case hex) whose flags say "not sampled".
_SAMPLED_OUT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f][02468ace]")
_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16
# The flags of a child of such a parent, by the parent's last hex digit: its "random trace id" bit, kept.
_CHILD_FLAGS = {ord(d): trace.TraceFlags(int(d, 16) & trace.TraceFlags.RANDOM_TRACE_ID) for d in "02468ace"}


def _sampled_out(headers: Any) -> re.Match[bytes] | None:
    # A message whose only trace header is the ``traceparent`` of an event sampled out, in the form ``_traceparent``
    # reads for the default propagators (OTEL_PROPAGATORS unset): its ids, matched by one regular expression, no
    # context made. Most messages are such (CRM_TRACE_RATIO); ``None`` for any other: ``extract_context`` reads it.
    if type(headers) is not list or not _w3c_default(propagate.get_global_textmap()):
        return None
    found = None
    for name, value in headers:
        if name in TRACE_HEADERS:
            if name != "traceparent" or found is not None:
                return None
            found = value
    return _SAMPLED_OUT.fullmatch(found) if type(found) is bytes else None


def sampled_out_child(headers: Headers) -> trace.Span | None:
    """What :func:`unsampled_child` makes under the context of a message sampled out upstream, made from its
    ``traceparent`` alone when that is all it carries, canonical; ``None`` for any other message (the context's
    to decide) or when the sampler might record it."""
    match = _sampled_out(headers)
    if match is None or match[1] == _ZERO_TRACE or match[2] == _ZERO_SPAN:
        return None
    if not _drops_unsampled(trace.get_tracer_provider()):
        return None
    span_id = random.getrandbits(64) or 1  # as unsampled_child does
    flags = _CHILD_FLAGS[match.group(0)[54]]
    return trace.NonRecordingSpan(trace.SpanContext(int(match[1], 16), span_id, False, flags))


def traced_parent(headers: Iterable[tuple[str, Any]] | dict | None) -> trace.SpanContext | None:
    """The span context a consumed (or outgoing) message carries when its event is traced; ``None`` when it is
    sampled out or carries none. A message sampled out is told from its ``traceparent`` without making its
    context (see ``_sampled_out``)."""
    if _sampled_out(headers) is not None:
        return None
    ctx = trace.get_current_span(extract_context(headers)).get_span_context()
    return ctx if ctx.is_valid and ctx.trace_flags.sampled else None


def linked_contexts(headers_of: Iterable[Any]) -> list[trace.SpanContext]:
    """The span contexts a span standing for many messages (a batch, a relay's send) links, one per message that
    carries one: only traced messages' when a message sampled out upstream is recorded nowhere (a link to it
    would lead nowhere), every valid one otherwise (``OTEL_TRACES_SAMPLER`` may record them)."""
    if sampled_out_unrecorded():
        return [ctx for headers in headers_of if (ctx := traced_parent(headers)) is not None]
    return [ctx for headers in headers_of
            if (ctx := trace.get_current_span(extract_context(headers)).get_span_context()).is_valid]


def sampled_out_unrecorded() -> bool:
    """Whether a message sampled out upstream gets no recorded span in any service: the sampler is the SDK's
    parent-based one or CRM_TRACE_RATIO's (``OTEL_TRACES_SAMPLER`` may choose one that records it)."""
    return _drops_unsampled(trace.get_tracer_provider())


_DROPS: list[Any] = [None, False]  # (the provider last asked about, its answer)


def _drops_unsampled(provider: Any) -> bool:
    # Whether this provider's sampler is the SDK's parent-based one that drops the child of a remote parent
    # that is not sampled (the default), or CRM_TRACE_RATIO's, which leaves every span with a parent to one;
    # OTEL_TRACES_SAMPLER may choose another, which then decides for itself. Worked out once per provider.
    if _DROPS[0] is not provider:
        from shared.observability.telemetry import LinksOrParentBased

        sampler = getattr(provider, "sampler", None)
        if type(sampler) is LinksOrParentBased:
            sampler = sampler.parent_based  # decides for every span with a parent
        kind = type(sampler)
        _DROPS[:] = [provider, kind.__module__ == "opentelemetry.sdk.trace.sampling" and kind.__name__ == "ParentBased"
                     and "remoteParentNotSampled:AlwaysOffSampler," in sampler.get_description()]
    return _DROPS[1]


_FIELDS: dict[int, frozenset[str]] = {}


def _fields(textmap: Any) -> frozenset[str]:
    # What the configured propagators read (W3C trace context and baggage unless OTEL_PROPAGATORS says
    # otherwise), worked out once per propagator.
    key = id(textmap)
    if key not in _FIELDS:
        _FIELDS[key] = frozenset(textmap.fields)
    return _FIELDS[key]


def event_attributes(event: Any) -> dict[str, str]:
    """Span attributes naming a channel event (never an identifier of the customer)."""
    return {
        "crm.event.id": event.id,
        "crm.event.type": event.type,
        "crm.event.source": event.source,
        "crm.channel": event.channel,
    }
