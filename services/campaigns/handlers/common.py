"""What every campaigns use case shares: its dependencies, outbox messages, the customer-view part."""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from services.campaigns.config import CampaignsSettings
from services.campaigns.domain.attribution import collapse, credits, outcomes, view_items
from services.campaigns.store import CampaignsStore
from shared.clock import Clock
from shared.contract import topics
from shared.contract.messages import ViewPartUpdated, part_version, part_version_floor
from shared.contract.view_parts import CampaignsPart
from shared.observability.trace_context import inject_headers
from shared.settings import Settings
from shared.storage.base import OutboxMessage
from shared.streaming.outbox import outbox_message as shared_outbox_message


@dataclass
class Deps:
    """What the handlers need, passed in: store, platform settings, campaigns settings, clock."""

    store: CampaignsStore
    settings: Settings
    config: CampaignsSettings
    clock: Clock


def outbox_message(deps: Deps, topic: str, key: str, body, headers: list | None = None) -> OutboxMessage:
    """A message for the outbox, keyed by the customer's pseudonymous id."""
    return shared_outbox_message(deps.settings, topic, key, body,
                                 headers=headers if headers is not None else inject_headers())


@contextmanager
def bulk_work() -> Iterator[None]:
    """Pause the cyclic garbage collector while a launch or a report builds hundreds of thousands of
    short-lived, acyclic objects: reference counting frees them, and collections triggered by the
    sheer number of allocations would otherwise take a third of a 100,000-customer launch."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def chunks(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _fingerprint(items: list[dict]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def refresh_views(customers: Collection[str], *, deps: Deps) -> list[OutboxMessage]:
    """Republish the ``campaigns`` part of each customer whose campaigns or conversions changed.

    The part is recomputed from the facts, compared with what was published last, and published
    with the customer's next version only when it differs: a duplicate or replay publishes nothing.
    """
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
