"""``crm trace EVENT_ID``: one event's trace across every service, as an indented tree with timings."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from shared.observability.telemetry import read_spans

EVENT_KEYS = ("messaging.message.id", "crm.event.id")


def traces_of(spans: list[dict], event_id: str) -> list[str]:
    """Trace ids in which some span handled this event id."""
    ids = []
    for span in spans:
        attrs = span.get("attributes") or {}
        if any(attrs.get(k) == event_id for k in EVENT_KEYS) and span["trace_id"] not in ids:
            ids.append(span["trace_id"])
    return ids


def _handles(span: dict, event_id: str) -> bool:
    attrs = span.get("attributes") or {}
    return any(attrs.get(k) == event_id for k in EVENT_KEYS)


def _path_to(event_id: str, mine: list[dict]) -> set[str]:
    """Span ids from the trace's root down to the spans that handled the event (a batch posted over HTTP
    is one trace for all its events: the others' branches are left out)."""
    by_id = {s["span_id"]: s for s in mine}
    keep: set[str] = set()
    for span in mine:
        if _handles(span, event_id):
            while span is not None and span["span_id"] not in keep:
                keep.add(span["span_id"])
                span = by_id.get(span["parent_id"])
    return keep


def render(spans: list[dict], trace_id: str, event_id: str | None = None) -> list[str]:
    """The lines of one trace's tree: name, service, duration, start offset; with ``event_id``, only the
    branches that lead to that event and everything beneath the spans that handled it.

    A span linked to work shared with other events (the batch's store transaction) shows that work
    beneath it, marked with ``↪``.
    """
    mine = [s for s in spans if s["trace_id"] == trace_id]
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str | None, list[dict]] = defaultdict(list)
    for s in spans:
        children[s["parent_id"]].append(s)
    ids = {s["span_id"] for s in mine}
    path = _path_to(event_id, mine) if event_id is not None else ids
    roots = [s for s in mine if s["parent_id"] not in ids]
    t0 = min(s["start_ns"] for s in mine)
    lines = [f"trace {trace_id}  ({len(mine)} spans)"]
    shown: set[str] = set()

    def line(span: dict, depth: int, mark: str = "") -> None:
        if span["trace_id"] == trace_id:
            shown.add(span["span_id"])
        took = (span["end_ns"] - span["start_ns"]) / 1e6
        offset = (span["start_ns"] - t0) / 1e6
        service = (span.get("service") or "").removeprefix("crm-")
        lines.append(f"{'  ' * depth}{mark}{span['name']}  [{service}]  {took:.2f} ms  (+{offset:.1f} ms)")

    def walk(span: dict, depth: int, *, follow_links: bool = True, mark: str = "", whole: bool = False) -> None:
        line(span, depth, mark)
        whole = whole or event_id is None or _handles(span, event_id)
        for child in sorted(children[span["span_id"]], key=lambda c: c["start_ns"]):
            if whole or child["span_id"] in path:
                walk(child, depth + 1, follow_links=follow_links, whole=whole)
        if follow_links:
            for link in span.get("links") or []:
                linked = by_id.get(link["span_id"])
                if linked is not None and linked["trace_id"] != trace_id:
                    walk(linked, depth + 1, follow_links=False, mark="↪ ", whole=True)

    for root in sorted(roots, key=lambda c: c["start_ns"]):
        if root["span_id"] in path:
            walk(root, 1)
    if len(shown) < len(mine):
        lines.append(f"  ({len(mine) - len(shown)} spans of this trace off this event's path left out)")
    return lines


def trace_lines(path: Path, event_id: str) -> list[str]:
    """Everything ``crm trace`` prints for an event."""
    spans = read_spans(path)
    found = traces_of(spans, event_id)
    if not found:
        return [f"no spans for event {event_id} in {path}",
                "(one event in ten is traced by default: CRM_TRACE_RATIO=1 crm up traces every event, and an event "
                "published with a sampled traceparent header is traced whatever the ratio)"]
    return [line for trace_id in found for line in render(spans, trace_id, event_id)]
