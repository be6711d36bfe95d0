"""The span file rotates by size (it grew to 204 MB in 15 minutes of fuzzing) and ``crm trace`` still
reads spans that were rotated out of the current file."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from crm.trace import trace_lines
from shared.observability.telemetry import JsonLinesSpanExporter, read_spans
from shared.settings import Settings


def _tracer(path, *, max_bytes: int, keep: int):
    provider = TracerProvider(resource=Resource.create({"service.name": "crm-identity"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path, max_bytes=max_bytes, keep=keep)))
    return provider.get_tracer("test")


def _event_span(tracer, event_id: str) -> None:
    with tracer.start_as_current_span("identity process crm.channel.pos", attributes={"crm.event.id": event_id}):
        with tracer.start_as_current_span("sqlite.transaction"):
            pass


def test_the_span_file_rotates_at_its_size_and_keeps_only_the_configured_older_files(tmp_path):
    path = tmp_path / "traces.jsonl"
    tracer = _tracer(path, max_bytes=4096, keep=2)
    for i in range(400):
        _event_span(tracer, f"e-{i}")
    files = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    assert files == ["traces.jsonl", "traces.jsonl.1", "traces.jsonl.2"]
    # A file is rotated on the first write after it reached the limit: it ends at most one span past it.
    line = max(len(x) for x in (tmp_path / "traces.jsonl.1").read_bytes().splitlines(keepends=True))
    assert all(p.stat().st_size < 4096 + line for p in tmp_path.iterdir())
    spans = read_spans(path)
    ids = [s["attributes"]["crm.event.id"] for s in spans if "crm.event.id" in s["attributes"]]
    # What is left is the newest spans, in the order they were written, none twice.
    assert ids == [f"e-{i}" for i in range(400 - len(ids), 400)] and 0 < len(ids) < 400


def test_crm_trace_finds_an_event_whose_spans_were_rotated_out_of_the_current_file(tmp_path):
    path = tmp_path / "traces.jsonl"
    tracer = _tracer(path, max_bytes=4096, keep=2)
    _event_span(tracer, "early")
    for i in range(10):
        _event_span(tracer, f"later-{i}")
    rotated_out = [p.name for p in tmp_path.glob("traces.jsonl.*") if "early" in p.read_text()]
    assert "early" not in path.read_text() and rotated_out in (["traces.jsonl.1"], ["traces.jsonl.2"])
    lines = trace_lines(path, "early")
    assert [line.split("  [")[0] for line in lines] == [
        lines[0], "  identity process crm.channel.pos", "    sqlite.transaction"]
    assert lines[0].startswith("trace ") and lines[0].endswith("(2 spans)")


def test_the_default_limit_is_64_mb_with_two_older_files():
    settings = Settings(_env_file=None)
    assert (settings.trace_file_max_mb, settings.trace_file_keep) == (64, 2)
