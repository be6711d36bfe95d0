"""OpenTelemetry SDK set-up, once per process, from the standard ``OTEL_*`` variables.

With ``OTEL_TRACES_EXPORTER=otlp`` spans go to a collector; the embedded platform's default is a
JSON-lines file under the data directory, which ``crm trace`` reads.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from shared.privacy import redact_digits
from shared.settings import Settings


class JsonLinesSpanExporter(SpanExporter):
    """Writes finished spans as JSON lines to a file several processes can append to, with the same
    redaction as :class:`RedactingExporter` applied while each line is written (no copy of the span)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(_compact(span), separators=(",", ":")) + "\n" for span in spans)
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class RedactingExporter(SpanExporter):
    """Masks digit runs that could be phone numbers in every string attribute before export
    (a lookup's ``url.query`` carries one), whichever instrumentation recorded it."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([_redacted(s) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


_URL_KEYS = {"url.query", "url.full", "http.url", "http.target"}


def _no_query_values(value: str) -> str:
    head, sep, query = value.partition("?") if "?" in value else ("", "", value)
    names = [part.split("=", 1)[0] for part in query.split("&") if part]
    return head + sep + "&".join(f"{n}=[redacted]" for n in names)


def _clean(attrs) -> dict:
    out = {}
    for k, v in (attrs or {}).items():
        if isinstance(v, str):
            v = _no_query_values(v) if k in _URL_KEYS and "=" in v else redact_digits(v)
        out[k] = v
    return out


def _redacted(span: ReadableSpan) -> ReadableSpan:
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=_clean(span.attributes), events=span.events, links=span.links, kind=span.kind,
        status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _compact(span: ReadableSpan) -> dict:
    # A small record (not ReadableSpan.to_json, which is several times slower) that `crm trace` reads.
    ctx, parent = span.context, span.parent
    return {
        "name": span.name,
        "trace_id": format(ctx.trace_id, "032x"),
        "span_id": format(ctx.span_id, "016x"),
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "service": span.resource.attributes.get("service.name"),
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": _clean(span.attributes),
        "links": [{"trace_id": format(link.context.trace_id, "032x"), "span_id": format(link.context.span_id, "016x")}
                  for link in span.links],
    }


_done = False


def setup_tracing(service: str, settings: Settings) -> None:
    """Install the tracer provider for this process."""
    global _done
    if _done or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    _done = True
    provider = TracerProvider(resource=Resource.create({"service.name": f"crm-{service}"}))
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "file")
    if exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(RedactingExporter(OTLPSpanExporter())))
    elif exporter_name != "none":
        path = Path(os.environ.get("CRM_TRACE_FILE", f"{settings.data_dir}/traces.jsonl"))
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(path)))
    trace.set_tracer_provider(provider)
    instrument_libraries()


def instrument_libraries() -> None:
    """The OpenTelemetry instrumentations for the Kafka producer and pymongo (FastAPI: per app)."""
    from opentelemetry.instrumentation.kafka import KafkaInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    for instrumentor in (KafkaInstrumentor(), PymongoInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def read_spans(path: Path) -> list[dict]:
    """Spans written by :class:`JsonLinesSpanExporter`."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
