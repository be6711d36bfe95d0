"""``crm trace EVENT_ID``: one event's trace across every service, as an indented tree with timings."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from shared.telemetry import read_spans

EVENT_KEYS = ("messaging.message.id", "crm.event.id")


def traces_of(spans: list[dict], event_id: str) -> list[str]:
    """Trace ids in which some span handled this event id."""
    ids = []
    for span in spans:
        attrs = span.get("attributes") or {}
        if any(attrs.get(k) == event_id for k in EVENT_KEYS) and span["trace_id"] not in ids:
            ids.append(span["trace_id"])
    return ids


def render(spans: list[dict], trace_id: str) -> list[str]:
    """The lines of one trace's tree: name, service, duration, start offset."""
    mine = [s for s in spans if s["trace_id"] == trace_id]
    ids = {s["span_id"] for s in mine}
    children: dict[str | None, list[dict]] = defaultdict(list)
    for s in mine:
        children[s["parent_id"] if s["parent_id"] in ids else None].append(s)
    t0 = min(s["start_ns"] for s in mine)
    lines = [f"trace {trace_id}  ({len(mine)} spans)"]

    def walk(span: dict, depth: int) -> None:
        took = (span["end_ns"] - span["start_ns"]) / 1e6
        offset = (span["start_ns"] - t0) / 1e6
        service = (span.get("service") or "").removeprefix("crm-")
        lines.append(f"{'  ' * depth}{span['name']}  [{service}]  {took:.2f} ms  (+{offset:.1f} ms)")
        for child in sorted(children[span["span_id"]], key=lambda c: c["start_ns"]):
            walk(child, depth + 1)

    for root in sorted(children[None], key=lambda c: c["start_ns"]):
        walk(root, 1)
    return lines


def trace_lines(path: Path, event_id: str) -> list[str]:
    """Everything ``crm trace`` prints for an event."""
    spans = read_spans(path)
    found = traces_of(spans, event_id)
    if not found:
        return [f"no spans for event {event_id} in {path}"]
    return [line for trace_id in found for line in render(spans, trace_id)]
