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

from shared.settings import Settings


class JsonLinesSpanExporter(SpanExporter):
    """Writes finished spans as JSON lines to a file several processes can append to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


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

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif exporter_name != "none":
        path = Path(os.environ.get("CRM_TRACE_FILE", f"{settings.data_dir}/traces.jsonl"))
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(path)))
    trace.set_tracer_provider(provider)


def read_spans(path: Path) -> list[dict]:
    """Spans written by :class:`JsonLinesSpanExporter`."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
