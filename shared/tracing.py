"""OpenTelemetry set-up and W3C trace context carried in Kafka headers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

Headers = list[tuple[str, bytes]]
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")


def kafka_instrumented() -> bool:
    """Whether the kafka-python instrumentation wraps the producer (it then injects trace context)."""
    from opentelemetry.instrumentation.kafka import KafkaInstrumentor

    return KafkaInstrumentor().is_instrumented_by_opentelemetry


def tracer(name: str) -> trace.Tracer:
    """The tracer for one module."""
    return trace.get_tracer(name)


def inject_headers(headers: Headers | None = None) -> Headers:
    """Kafka headers carrying the current trace context (``traceparent``, ``tracestate``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    out = [h for h in (headers or []) if h[0] not in carrier]
    out.extend((k, v.encode()) for k, v in carrier.items())
    return out


def extract_context(headers: Iterable[tuple[str, Any]] | dict | None) -> otel_context.Context:
    """The trace context a consumed message carries (an empty one if none)."""
    if headers is None:
        return otel_context.Context()
    items = headers.items() if isinstance(headers, dict) else headers
    carrier = {
        k: (v.decode("latin-1") if isinstance(v, bytes | bytearray) else str(v)) for k, v in items
    }
    return propagate.extract(carrier)


def event_attributes(event: Any) -> dict[str, str]:
    """Span attributes naming a channel event (never an identifier of the customer)."""
    return {
        "messaging.message.id": event.id,
        "crm.event.id": event.id,
        "crm.event.type": event.type,
        "crm.event.source": event.source,
        "crm.channel": event.channel,
    }
