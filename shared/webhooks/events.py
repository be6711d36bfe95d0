"""What a subscriber can receive: the webhook event types and THE table from platform message to event.

Each entry takes one consumed message (a model of :mod:`shared.contract.messages`) and returns the webhook
events it is (none, one). Alert changes carry no "what happened", so the alert entries compare the change
with the last one seen of the same alert (``AlertSeen``, kept in the webhook store): the first time an
alert is open (or open again after it was resolved) is ``alert.opened``; a higher severity of an active
alert is ``alert.escalated``.

Event ids derive from the message, so a message consumed twice (a replay, a redelivery after a crash)
is the same event and is delivered once per subscription.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.access import masking
from shared.contract.messages import AlertChanged, CampaignTouched, PointsExpiryAnnounced, TierChanged

ALERT_OPENED = "alert.opened"
ALERT_ESCALATED = "alert.escalated"
POINTS_EXPIRING = "points.expiring"
TIER_CHANGED = "tier.changed"
CAMPAIGN_TOUCH = "campaign.touch"
EVENT_TYPES = (ALERT_OPENED, ALERT_ESCALATED, POINTS_EXPIRING, TIER_CHANGED, CAMPAIGN_TOUCH)

_SEVERITY_RANK = {"info": 0, "yellow": 1, "red": 2}


@dataclass(frozen=True)
class AlertSeen:
    """The last change of an active alert this consumer has seen (resolved alerts are forgotten)."""

    alert_id: str
    status: str
    severity: str
    customer_id: str | None = None  # whose alert: an erasure forgets it (alert ids derive from the customer's)


@dataclass(frozen=True)
class WebhookEvent:
    """One event as subscribers receive it: ``body`` is the exact JSON sent (and signed)."""

    event_id: str
    type: str
    time: datetime
    data: dict[str, Any]

    def body(self) -> str:
        """The delivery body: ``{"id", "type", "time", "data"}``."""
        return json.dumps({"id": self.event_id, "type": self.type, "time": self.time.isoformat(),
                           "data": self.data}, separators=(",", ":"), sort_keys=False, default=str)


def event_id(type_: str, *parts: str) -> str:
    """The id of the event a message is: the same message gives the same id."""
    return "evt_" + hashlib.sha256("\0".join((type_, *parts)).encode()).hexdigest()[:24]


def _alert(m: AlertChanged, seen: dict[str, AlertSeen]) -> list[WebhookEvent]:
    before = seen.get(m.alert_id)
    if m.status == "resolved":
        seen.pop(m.alert_id, None)
    else:
        seen[m.alert_id] = AlertSeen(m.alert_id, m.status, m.severity, m.customer_id)
    data = {"alert_id": m.alert_id, "customer_id": m.customer_id, "alert_type": m.type, "severity": m.severity,
            "status": m.status, "store_id": m.store_id}
    at = m.at.isoformat()
    if before is None and m.status == "open":
        return [WebhookEvent(event_id(ALERT_OPENED, m.alert_id, at), ALERT_OPENED, m.at, data)]
    if before is not None and m.status != "resolved" \
            and _SEVERITY_RANK[m.severity] > _SEVERITY_RANK.get(before.severity, 0):
        return [WebhookEvent(event_id(ALERT_ESCALATED, m.alert_id, m.severity, at), ALERT_ESCALATED, m.at,
                             {**data, "previous_severity": before.severity})]
    return []


def _expiry(m: PointsExpiryAnnounced, seen: dict[str, AlertSeen]) -> list[WebhookEvent]:
    return [WebhookEvent(event_id(POINTS_EXPIRING, m.announcement_id), POINTS_EXPIRING, m.at,
                         {"announcement_id": m.announcement_id, "customer_id": m.customer_id, "points": m.points,
                          "expires_at": m.expires_at.isoformat(), "balance": m.balance})]


def _tier(m: TierChanged, seen: dict[str, AlertSeen]) -> list[WebhookEvent]:
    # The reason and benefits are free text a person may have written: masked as a reader sees them.
    return [WebhookEvent(event_id(TIER_CHANGED, m.change_id), TIER_CHANGED, m.at,
                         {"change_id": m.change_id, "customer_id": m.customer_id, "previous": m.previous,
                          "tier": m.tier, "direction": m.direction, "reason": masking.text(m.reason),
                          "benefits": masking.document(m.benefits)})]


def _touch(m: CampaignTouched, seen: dict[str, AlertSeen]) -> list[WebhookEvent]:
    # No phone or address: a channel system looks the customer up with its own key (see the README). The step
    # tells a reply's follow-up (the sample to mail) from the first touch (the invite).
    return [WebhookEvent(event_id(CAMPAIGN_TOUCH, m.touch_id), CAMPAIGN_TOUCH, m.at,
                         {"touch_id": m.touch_id, "campaign_id": m.campaign_id, "customer_id": m.customer_id,
                          "channel": m.channel, "step": m.step, "offer": masking.document(m.offer)})]


Entry = Callable[[Any, dict[str, AlertSeen]], list[WebhookEvent]]

EVENTS: dict[type, Entry] = {
    AlertChanged: _alert,  # alert.opened, alert.escalated (crm.alerts.events)
    PointsExpiryAnnounced: _expiry,  # points.expiring (crm.loyalty.events)
    TierChanged: _tier,  # tier.changed (crm.loyalty.events)
    CampaignTouched: _touch,  # campaign.touch (crm.campaigns.touches)
}

# The event types each of those messages can be: a message no enabled subscription wants any of is not worked
# out (an alert change still is, for what is seen of its alert).
TYPES: dict[type, tuple[str, ...]] = {
    AlertChanged: (ALERT_OPENED, ALERT_ESCALATED), PointsExpiryAnnounced: (POINTS_EXPIRING,),
    TierChanged: (TIER_CHANGED,), CampaignTouched: (CAMPAIGN_TOUCH,),
}

# The kinds worth decoding: every other message on these topics is skipped without parsing its JSON.
KIND_MARKERS = tuple(f'"kind":"{model.model_fields["kind"].default}"'.encode() for model in EVENTS)


def events_of(message: Any, *, seen: dict[str, AlertSeen]) -> list[WebhookEvent]:
    """The webhook events one message is (updating ``seen`` for alert changes)."""
    entry = EVENTS.get(type(message))
    return entry(message, seen) if entry is not None else []
