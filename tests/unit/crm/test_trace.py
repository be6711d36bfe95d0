"""``crm trace``: one event's path through a trace that a batch posted over HTTP shares with other events."""

from __future__ import annotations

import json

from crm.trace import trace_lines


def span(name: str, span_id: str, parent: str | None, *, service: str = "crm-identity", event: str | None = None,
         start: int = 0, trace_id: str = "t1", links: list[str] = ()) -> dict:
    return {"name": name, "trace_id": trace_id, "span_id": span_id, "parent_id": parent, "service": service,
            "kind": "INTERNAL", "start_ns": start * 1_000_000, "end_ns": (start + 1) * 1_000_000, "status": "OK",
            "attributes": {"crm.event.id": event} if event else {},
            "links": [{"trace_id": "t2", "span_id": s} for s in links]}


def test_only_the_events_branch_is_printed_and_the_rest_is_counted(tmp_path):
    spans = [
        span("POST /v1/events", "r", None),
        span("crm.channel.pos send", "s1", "r", start=1),
        span("identity process crm.channel.pos", "p1", "s1", event="e1", start=2, links=["tx"]),
        span("create crm.customer.events", "c1", "p1", start=3),
        span("loyalty process crm.customer.events", "l1", "c1", service="crm-loyalty", start=4),
        span("crm.channel.pos send", "s2", "r", start=1),
        span("identity process crm.channel.pos", "p2", "s2", event="e2", start=2),
        span("create crm.customer.events", "c2", "p2", start=3),
        span("sqlite.transaction", "tx", None, trace_id="t2", start=2),
        # The batch's work shared by several events: shown whole under the link.
        span("create crm.loyalty.events", "cl", "tx", trace_id="t2", start=3),
        span("identity process crm.loyalty.events", "il", "cl", trace_id="t2", start=4),
    ]
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in spans))
    assert [line.split("  [")[0] for line in trace_lines(path, "e1")] == [
        "trace t1  (8 spans)",
        "  POST /v1/events",
        "    crm.channel.pos send",
        "      identity process crm.channel.pos",
        "        create crm.customer.events",
        "          loyalty process crm.customer.events",
        "        ↪ sqlite.transaction",
        "          create crm.loyalty.events",
        "            identity process crm.loyalty.events",
        "  (3 spans of this trace off this event's path left out)",
    ]
    assert trace_lines(path, "e9") == [
        f"no spans for event e9 in {path}",
        "(one event in ten is traced by default: CRM_TRACE_RATIO=1 crm up traces every event, and an event "
        "published with a sampled traceparent header is traced whatever the ratio)"]
