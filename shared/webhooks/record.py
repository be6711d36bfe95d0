"""Consumption: the platform messages a subscriber wants become pending deliveries, nothing is sent here.

The host's own consumer reads the topics that carry them (alerts: in the batch it folds identity's and
loyalty's messages into, so each message is read and decoded once) and hands its decoded messages here, inside
its batch's store transaction: a batch's deliveries commit with the rest of what the batch does (its dead
letters), and the offsets are committed after it; a batch consumed again after a crash finds its deliveries
kept (one per subscription and event id) and adds nothing. Sending is the dispatcher's (``dispatch.py``), so a
receiver that is slow or never answers costs consumption nothing.

A message naming a customer the host has erased (a late or replayed one, issue 12) never gets here: the host's
consumption drops it (counted ``erased``), so no delivery about an erased person is ever recorded.
"""

from __future__ import annotations

import secrets
from typing import Any

from shared.clock import Clock, iso_utc
from shared.contract.messages import AlertChanged, decode
from shared.webhooks.events import EVENTS, KIND_MARKERS, TYPES, events_of
from shared.webhooks.store import Delivery, WebhookStore


def decode_subscribed(raw: bytes) -> Any:
    """The message, if it is of a kind a subscriber may receive; None for any other (most messages on these
    topics are view parts and audit entries: skipped without parsing their JSON)."""
    if not any(marker in raw for marker in KIND_MARKERS):
        return None
    return decode(raw)


def record(messages: list[Any], *, webhooks: WebhookStore, clock: Clock) -> int:
    """Keep the pending deliveries these consumed messages are for the enabled subscriptions, in the caller's
    transaction, in order (an alert's changes are told apart by the one seen before); returns how many were
    new. Messages of other kinds are passed over."""
    known = [m for m in messages if type(m) in EVENTS]
    if not known:
        return 0
    alert_ids = [m.alert_id for m in known if m.kind == "alert.changed"]
    before = webhooks.alerts_seen(alert_ids) if alert_ids else {}
    seen = dict(before)
    subs = webhooks.subscriptions(enabled_only=True)
    # Only the events a subscription wants are worked out (a tier change's masked benefits cost as much as the
    # rest of its message's consumption); an alert change is followed whatever is wanted, since what is seen of
    # its alert tells what a later change of it is.
    wanted = {t for sub in subs for t in sub.event_types}
    events = [e for m in known if type(m) is AlertChanged or not wanted.isdisjoint(TYPES[type(m)])
              for e in events_of(m, seen=seen)]
    if alert_ids:
        webhooks.alerts_seen_put(seen=[s for a, s in seen.items() if before.get(a) != s],
                                 forget=[a for a in before if a not in seen])
    now = iso_utc(clock())
    deliveries = [Delivery("dl_" + secrets.token_hex(10), sub.webhook_id, e.event_id, e.type, e.body(),
                           "pending", now, customer_id=e.data.get("customer_id"))
                  for e in events for sub in subs if e.type in sub.event_types]
    return webhooks.deliveries_add(deliveries)
