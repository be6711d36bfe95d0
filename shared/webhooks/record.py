"""Consumption: the platform messages a subscriber wants become pending deliveries, nothing is sent here.

A batch's deliveries are written in one transaction of the host's store (with the batch's dead letters), and
the offsets are committed after it; a batch consumed again after a crash finds its deliveries kept (one per
subscription and event id) and adds nothing. Sending is the dispatcher's (``dispatch.py``), so a receiver
that is slow or never answers costs consumption nothing.

A message naming a customer the host has erased (a late or replayed one, issue 12) is dropped, counted
``erased``, as the host's own consumption drops it: no delivery about an erased person is ever recorded.
"""

from __future__ import annotations

import secrets
from typing import Any

from shared.clock import Clock, iso_utc
from shared.contract.messages import decode
from shared.storage.base import OutboxMessage
from shared.streaming.batch import BatchOutcome, Decoded, Incoming, process_batch
from shared.streaming.erasure import ids_of
from shared.webhooks.events import KIND_MARKERS, events_of
from shared.webhooks.store import Delivery, WebhookStore


def _decode(msg: Incoming) -> Any:
    # Most messages on these topics are view parts and audit entries: skipped without parsing their JSON.
    if not any(marker in msg.value for marker in KIND_MARKERS):
        return None
    return decode(msg.value)


def record(batch: list[Incoming], *, host_store: Any, webhooks: WebhookStore, service: str, prefix: str,
           clock: Clock) -> BatchOutcome:
    """Turn a batch of consumed messages into pending deliveries for the enabled subscriptions."""

    def apply(items: list[Decoded[Any]], outcome: BatchOutcome) -> list[OutboxMessage]:
        known = [one.item for one in items if one.item is not None]
        outcome.counts["ignored"] += len(items) - len(known)
        named = [ids_of(m) for m in known]
        erased = host_store.erased_ids(sorted(set().union(*named))) if known else set()
        if erased:
            kept = [m for m, ids in zip(known, named, strict=True) if erased.isdisjoint(ids)]
            outcome.counts["erased"] += len(known) - len(kept)
            known = kept
        alert_ids = [m.alert_id for m in known if getattr(m, "kind", "") == "alert.changed"]
        before = webhooks.alerts_seen(alert_ids) if alert_ids else {}
        seen = dict(before)
        events = [e for m in known for e in events_of(m, seen=seen)]
        if alert_ids:
            webhooks.alerts_seen_put(seen=[s for a, s in seen.items() if before.get(a) != s],
                                     forget=[a for a in before if a not in seen])
        subs = webhooks.subscriptions(enabled_only=True) if events else []
        now = iso_utc(clock())
        deliveries = [Delivery("dl_" + secrets.token_hex(10), sub.webhook_id, e.event_id, e.type, e.body(),
                               "pending", now, customer_id=e.data.get("customer_id"))
                      for e in events for sub in subs if e.type in sub.event_types]
        added = webhooks.deliveries_add(deliveries)
        outcome.processed += len(known)
        outcome.counts["webhook_deliveries"] += added
        return []

    return process_batch(batch, store=host_store, service=service, prefix=prefix, clock=clock, decode=_decode,
                         apply=apply)


