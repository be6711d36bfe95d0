"""OpenTelemetry SDK set-up, once per process, from the standard ``OTEL_*`` variables.

With ``OTEL_TRACES_EXPORTER=otlp`` spans go to a collector; the embedded platform's default is a
JSON-lines file under the data directory, which ``crm trace`` reads. Unless ``OTEL_TRACES_SAMPLER`` says
otherwise, ``CRM_TRACE_RATIO`` of the events are traced (0.1; 1 traces every event), each with the batch
spans of every service that handled it.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import orjson
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, TraceState

from shared.privacy import redact
from shared.settings import Settings
from shared.storage.files import private_dir, private_opener


class JsonLinesSpanExporter(SpanExporter):
    """Writes finished spans as JSON lines to a file several processes can append to, with the same
    redaction as :class:`RedactingExporter` applied while each line is written (no copy of the span).

    The file rotates once it reaches ``max_bytes``: ``traces.jsonl`` becomes ``traces.jsonl.1`` (and
    ``.1`` becomes ``.2``, up to ``keep`` older files), so spans never take more than about
    ``(keep + 1) * max_bytes`` of disk.
    """

    def __init__(self, path: Path, *, max_bytes: int = 64 * 1024 * 1024, keep: int = 2) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        private_dir(path.parent)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = b"".join([orjson.dumps(_compact(span), option=orjson.OPT_APPEND_NEWLINE) for span in spans])
        with self._lock:
            if _size(self.path) >= self.max_bytes:
                self._rotate()
            with open(self.path, "ab", opener=private_opener) as f:
                f.write(lines)
        return SpanExportResult.SUCCESS

    def _rotate(self) -> None:
        # Every service process appends to the same file: the lock file makes one of them rotate, and the
        # size is checked again under it so the others do not rotate the fresh file a second time.
        with open(self.path.with_name(self.path.name + ".lock"), "a", opener=private_opener) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if _size(self.path) < self.max_bytes:
                    return
                for n in range(self.keep, 1, -1):
                    older = rotated(self.path, n - 1)
                    if older.exists():
                        older.replace(rotated(self.path, n))
                self.path.replace(rotated(self.path, 1))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def shutdown(self) -> None:
        return None


def rotated(path: Path, n: int) -> Path:
    """The ``n``-th older span file beside ``path`` (``traces.jsonl.1`` is the newest of them)."""
    return path.with_name(f"{path.name}.{n}")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


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
    if not attrs:
        return {}
    return {k: _clean_value(k, v) if type(v) is str else v for k, v in attrs.items()}


@lru_cache(maxsize=4096)
def _clean_value(key: str, value: str) -> str:
    # Most attribute values repeat span after span (topics, event types, sources, operations): each is
    # checked once, not once per span.
    return _no_query_values(value) if key in _URL_KEYS and "=" in value else redact(value)


def _redacted(span: ReadableSpan) -> ReadableSpan:
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=_clean(span.attributes), links=span.links, kind=span.kind,
        # An exception recorded on a span carries its message: cleaned like the attributes.
        events=[Event(e.name, _clean(e.attributes), e.timestamp) for e in span.events],
        status=Status(span.status.status_code, redact(span.status.description))
        if span.status.description else span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _compact(span: ReadableSpan) -> dict:
    # A small record (not ReadableSpan.to_json, which is several times slower) that `crm trace` reads.
    ctx, parent = span._context, span._parent  # the properties copy; the export thread only reads them
    return {
        "name": span._name,
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "service": span._resource._attributes.get("service.name"),
        "kind": _KIND_NAMES[span.kind],
        "start_ns": span._start_time,
        "end_ns": span._end_time,
        "status": span._status.status_code.name,
        "attributes": _clean(span._attributes),
        "links": [{"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
                  for link in span._links],
    }


_KIND_NAMES = {kind: kind.name for kind in SpanKind}


_BATCH = "messaging.batch.message_count"
# The trace state of a batch span sampled only for the traced events it links, and of the spans beneath it:
# what the batch announces is not traced for that (``trace_context.message_headers``), as the ratio decided.
BY_LINKS = TraceState([("crm", "links")])


class LinksOrParentBased(Sampler):
    """``ParentBased(TraceIdRatioBased(ratio))``, except that a batch span without a parent (a span with the
    messaging attribute ``messaging.batch.message_count``) is also sampled when it links a sampled span.

    A service's batch span is such a root, linked to its messages' traces: it is recorded whenever one of its
    events is traced, so a traced event's trace shows its batch's store work, commit and relay in every
    service (on its own it would be sampled one batch in ten, whatever events it holds). Other roots keep the
    ratio: a message that came without a trace context starts a trace of its own, linked to its batch's store
    work, and is not traced because the batch is. Nor is what such a batch announces outside its messages'
    spans (``BY_LINKS``): those messages keep the ratio's decision for the batch."""

    def __init__(self, ratio: float) -> None:
        self.parent_based = ParentBased(TraceIdRatioBased(ratio))

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None,
                      trace_state=None) -> SamplingResult:
        result = self.parent_based.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if (result.decision is Decision.DROP and links and attributes and _BATCH in attributes
                and not trace.get_current_span(parent_context).get_span_context().is_valid
                and any(link.context.trace_flags.sampled for link in links)):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, BY_LINKS)
        return result

    def get_description(self) -> str:
        return f"LinksOrParentBased{{{self.parent_based.get_description()}}}"


def default_sampler(settings: Settings) -> Sampler | None:
    """``CRM_TRACE_RATIO`` of the events (and every batch span linking one of them), unless
    ``OTEL_TRACES_SAMPLER`` is set: ``None`` then, and the SDK reads the standard variables."""
    return None if os.environ.get("OTEL_TRACES_SAMPLER") else LinksOrParentBased(settings.trace_ratio)


_done = False


def setup_tracing(service: str, settings: Settings) -> None:
    """Install the tracer provider for this process."""
    global _done
    if _done or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    _done = True
    provider = TracerProvider(resource=Resource.create({"service.name": f"crm-{service}"}),
                              sampler=default_sampler(settings))
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "file")
    if exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(RedactingExporter(OTLPSpanExporter())))
    elif exporter_name != "none":
        path = Path(os.environ.get("CRM_TRACE_FILE", f"{settings.data_dir}/traces.jsonl"))
        exporter = JsonLinesSpanExporter(path, max_bytes=int(settings.trace_file_max_mb * 1024 * 1024),
                                         keep=settings.trace_file_keep)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    instrument_libraries()


def instrument_libraries() -> None:
    """The OpenTelemetry instrumentations for the Kafka producer and pymongo (FastAPI: per app)."""
    from opentelemetry.instrumentation.kafka import KafkaInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    for instrumentor in (KafkaInstrumentor(), PymongoInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def kafka_instrumented() -> bool:
    """Whether the kafka-python instrumentation wraps the producer (it then injects trace context)."""
    from opentelemetry.instrumentation.kafka import KafkaInstrumentor

    return KafkaInstrumentor().is_instrumented_by_opentelemetry


def read_spans(path: Path) -> list[dict]:
    """Spans written by :class:`JsonLinesSpanExporter`: the rotated files, oldest first, then the current one."""
    older = sorted((p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
                   key=lambda p: -int(p.suffix[1:])) if path.parent.exists() else []
    spans = []
    for file in [*older, path]:
        if file.exists():
            spans += [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return spans
