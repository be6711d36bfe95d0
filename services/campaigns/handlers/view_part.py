"""The campaigns part of the single customer view: recomputed from the facts, republished when it changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from datetime import UTC, datetime

from services.campaigns.domain.attribution import collapse, credits, outcomes, view_items
from services.campaigns.domain.delivery import TouchState, states
from services.campaigns.handlers import Deps
from services.campaigns.handlers.outbox import chunks, outbox_message
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.messages import ViewPartUpdated, part_version, part_version_floor
from shared.contract.view_parts import CampaignsPart
from shared.observability.trace_context import inject_headers
from shared.storage.base import OutboxMessage


def _fingerprint(items: list[dict]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def refresh_views(customers: Collection[str], *, deps: Deps) -> list[OutboxMessage]:
    """Republish the ``campaigns`` part of each customer whose campaigns or conversions changed.

    The part is recomputed from the facts, compared with what was published last, and published
    with the customer's next version only when it differs: a duplicate or replay publishes nothing.
    """
    if not customers:  # most batches change nobody's campaigns: no trace context made for nothing
        return []
    store, out = deps.store, []
    headers = inject_headers()
    for chunk in chunks(sorted(set(customers)), deps.config.refresh_chunk):
        enrolled = store.enrolments(chunk)
        held = store.view_hashes(chunk)
        if not enrolled and not held:
            continue
        items: dict[str, list[dict]] = {}
        if enrolled:
            units = collapse(enrolled)
            who = {e.customer_id for e in units}
            sales, refunds = store.sales(who, since_ms=min(e.at_ms for e in units))
            done = outcomes(units, credits(units, sales, refunds, deps.config.attribution))
            items = view_items(units, done, store.campaign_names({e.campaign_id for e in units}))
        parts = {c: items.get(c, []) for c in chunk if c in items or c in held}
        changed = {c: h for c, v in parts.items() if (h := _fingerprint(v)) != held.get(c)}
        if not changed:
            continue
        versions = store.save_views(changed, floor=part_version_floor())
        for c in sorted(changed):
            body = ViewPartUpdated(customer_id=c, part="campaigns", value=CampaignsPart(items=parts[c]),
                                   version=part_version(versions[c]))
            out.append(outbox_message(deps, topics.CAMPAIGN_EVENTS, c, body, headers))
    return out


# -- issue 12, export (H4) ------------------------------------------------------------------------


def export(customer_id: str, *, deps: Deps) -> dict:
    """Campaigns' part of a customer's export: every campaign they are enrolled in, with group and
    conversion, as their part of the single customer view shows it (a merged-away id: its customer's)."""
    store = deps.store
    root = store.current_customers({customer_id}).get(customer_id, customer_id)
    enrolled = store.enrolments([root])
    if not enrolled:
        return {"customer_id": root, "campaigns": []}
    units = collapse(enrolled)
    sales, refunds = store.sales({e.customer_id for e in units}, since_ms=min(e.at_ms for e in units))
    done = outcomes(units, credits(units, sales, refunds, deps.config.attribution))
    items = view_items(units, done, store.campaign_names({e.campaign_id for e in units}))
    return {"customer_id": root, "campaigns": items.get(root, []), "touches": _touches(enrolled, deps=deps)}


def _touches(enrolled: list, *, deps: Deps) -> list[dict]:
    """Issue 14: every touch sent to the customer's records and where its receipts left it."""
    touches = deps.store.touches_of(sorted({e.member_id for e in enrolled}))
    found = states(deps.store.receipts_of([t.touch_id for t in touches]))
    out = []
    for t in touches:
        state = found.get(t.touch_id, TouchState())
        out.append({"touch_id": t.touch_id, "campaign_id": t.campaign_id, "step": t.step, "channel": t.channel,
                    "sent_at": iso_utc(datetime.fromtimestamp(t.at_ms / 1000, UTC)), "status": state.status,
                    "failure_reason": state.reason})
    return out
