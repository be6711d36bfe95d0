"""The webhook store: the operations subscriptions, recording and the dispatcher need, and their rows.

Adapters (``sqlite.py``, ``mongo.py``) live in the host service's own database, so a batch's deliveries are
written in the same transaction as the rest of what the batch does, and its dead letters beside them.
Signing secrets are kept sealed under the host's keyring (encryption at rest, ``shared/storage/crypto.py``):
a copy of the database alone signs nothing. Secrets kept in clear by an older version are sealed when the
store opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from shared.webhooks.events import AlertSeen

DeliveryStatus = Literal["pending", "delivered", "dead"]


@dataclass(frozen=True)
class Subscription:
    """A subscriber: where to send which event types, signed with ``secret``."""

    webhook_id: str
    url: str
    event_types: tuple[str, ...]
    secret: str
    enabled: bool
    description: str | None
    created_by: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Delivery:
    """One event for one subscriber, and how sending it went so far.

    ``next_ms``: when the dispatcher may try next (epoch ms); ``lease_ms``: until when a dispatcher that took
    it is sending it (another takes it only after that, so a dispatcher that died leaves nothing stuck).
    """

    delivery_id: str
    webhook_id: str
    event_id: str
    event_type: str
    body: str
    status: DeliveryStatus
    created_at: str
    attempts: int = 0
    next_ms: int = 0
    lease_ms: int = 0
    last_status: int | None = None
    last_error: str | None = None
    dead_reason: str | None = None
    updated_at: str | None = None
    # Whom the event is about (``data.customer_id``): what an erasure deletes the delivery by.
    customer_id: str | None = None


class WebhookStore(Protocol):
    """Subscriptions, deliveries and the alert changes seen."""

    def subscription_add(self, sub: Subscription) -> None:
        """Keep a new subscription."""

    def subscription(self, webhook_id: str) -> Subscription | None:
        """One subscription."""

    def subscriptions(self, *, enabled_only: bool = False) -> list[Subscription]:
        """Every subscription, oldest first."""

    def subscription_put(self, sub: Subscription) -> None:
        """Replace a subscription (its url, types, enabled)."""

    def deliveries_add(self, deliveries: list[Delivery]) -> int:
        """Keep new deliveries; one already kept for the same subscription and event is left as it is.
        Returns how many were new."""

    def deliveries_due(self, *, now_ms: int, lease_ms: int, limit: int, webhook_ids: list[str]) -> list[Delivery]:
        """Take up to ``limit`` pending deliveries due by ``now_ms`` of these subscriptions, oldest first, each
        leased until ``lease_ms``."""

    def delivery_update(self, delivery: Delivery) -> None:
        """Record an attempt's outcome (status, attempts, next try, last code or error; lease released)."""

    def delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery."""

    def deliveries(self, webhook_id: str, *, status: str | None = None, offset: int = 0,
                   limit: int = 50) -> tuple[list[Delivery], int]:
        """A subscription's deliveries, newest first, and how many there are."""

    def customers_erase(self, customer_ids: list[str]) -> int:
        """Delete every delivery (pending, delivered or dead) about these customer or record ids, and the alert
        changes seen of theirs, in the caller's transaction (an erasure's); returns how many deliveries."""

    def deliveries_purge(self, *, before: str) -> int:
        """Forget delivered and dead deliveries last tried before ``before`` (ISO-8601 UTC); returns how many."""

    def alerts_seen(self, alert_ids: list[str]) -> dict[str, AlertSeen]:
        """The last change seen of these alerts (active ones only)."""

    def alerts_seen_put(self, *, seen: list[AlertSeen], forget: list[str]) -> None:
        """Keep the last change seen of alerts; forget resolved ones."""
