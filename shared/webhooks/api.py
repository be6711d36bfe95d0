"""The ``/v1/webhooks`` routes (admin only), mounted by the hosting service.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, and ``HooksDep`` is
local to ``router()``.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from shared.access.visibility import Seeing
from shared.clock import iso_utc
from shared.http.api import Caller, caller_dep
from shared.http.bounds import Offset
from shared.webhooks import commands
from shared.webhooks.events import EVENT_TYPES
from shared.webhooks.host import Webhooks
from shared.webhooks.schemas import (
    DeliveriesPage,
    DeliveryRead,
    WebhookCreate,
    WebhookRead,
    WebhooksPage,
    WebhookUpdate,
)
from shared.webhooks.store import Delivery, Subscription


def webhook_read(sub: Subscription, *, secret: str | None = None) -> WebhookRead:
    """A subscription as the API shows it."""
    return WebhookRead(webhook_id=sub.webhook_id, url=sub.url, event_types=list(sub.event_types),
                       enabled=sub.enabled, description=sub.description, created_by=sub.created_by,
                       created_at=sub.created_at, updated_at=sub.updated_at, secret=secret)


def delivery_read(d: Delivery) -> DeliveryRead:
    """A delivery as the API shows it."""
    due = iso_utc(datetime.fromtimestamp(d.next_ms / 1000, UTC)) if d.status == "pending" else None
    return DeliveryRead(delivery_id=d.delivery_id, webhook_id=d.webhook_id, event_id=d.event_id,
                        event_type=d.event_type, status=d.status, attempts=d.attempts, next_attempt_at=due,
                        last_status_code=d.last_status, last_error=d.last_error, dead_reason=d.dead_reason,
                        created_at=d.created_at, updated_at=d.updated_at)


def router(hooks: Webhooks, *, audit: Any = None) -> APIRouter:
    """The webhook routes over ``hooks``; ``audit`` (an ``Auditor``) records each change of a subscription."""
    r = APIRouter(prefix="/webhooks", tags=["webhooks"])
    HooksDep = Annotated[Webhooks, Depends(lambda: hooks)]

    def company_wide(seeing: Seeing) -> None:
        # Subscribers get every store's events: a store's own admin may not subscribe (403 forbidden_scope).
        seeing.company_only("webhooks")

    # The role first (the gate reads it before the body), then the scope.
    Admin = Annotated[Caller, caller_dep("admin")]
    CompanyWide = Annotated[None, Depends(company_wide)]

    def note(caller: Caller, action: str, webhook_id: str) -> None:
        if audit is not None:
            audit(caller, action=action, target=webhook_id)

    @r.get("/event-types", response_model=list[str])
    def event_types(caller: Admin, _company: CompanyWide) -> list[str]:
        """The event types a subscription can ask for."""
        return list(EVENT_TYPES)

    @r.post("", response_model=WebhookRead, status_code=201)
    def create_webhook(body: WebhookCreate, hooks: HooksDep, caller: Admin, _company: CompanyWide) -> WebhookRead:
        """Subscribe a URL to event types; a generated secret is in this answer only."""
        sub, generated = commands.create(body.url, hooks=hooks, event_types=list(body.event_types),
                                         secret=body.secret, description=body.description, actor=caller.name)
        note(caller, "webhook.create", sub.webhook_id)
        return webhook_read(sub, secret=generated)

    @r.get("", response_model=WebhooksPage)
    def list_webhooks(hooks: HooksDep, caller: Admin, _company: CompanyWide) -> WebhooksPage:
        """Every subscription, oldest first (secrets never shown)."""
        subs = hooks.store.subscriptions()
        return WebhooksPage(items=[webhook_read(s) for s in subs], total=len(subs))

    @r.get("/{webhook_id}", response_model=WebhookRead)
    def get_webhook(webhook_id: str, hooks: HooksDep, caller: Admin, _company: CompanyWide) -> WebhookRead:
        """One subscription."""
        return webhook_read(commands.get(webhook_id, hooks=hooks))

    @r.patch("/{webhook_id}", response_model=WebhookRead)
    def update_webhook(webhook_id: str, body: WebhookUpdate, hooks: HooksDep,
                       caller: Admin, _company: CompanyWide) -> WebhookRead:
        """Change a subscription's URL, event types, description, or enable/disable it."""
        sub = commands.update(webhook_id, hooks=hooks, url=body.url, description=body.description,
                              event_types=None if body.event_types is None else list(body.event_types),
                              enabled=body.enabled)
        note(caller, "webhook.update", webhook_id)
        return webhook_read(sub)

    @r.delete("/{webhook_id}", response_model=WebhookRead)
    def disable_webhook(webhook_id: str, hooks: HooksDep, caller: Admin, _company: CompanyWide) -> WebhookRead:
        """Disable a subscription: nothing more is recorded or sent for it; its deliveries stay listed."""
        sub = commands.update(webhook_id, hooks=hooks, enabled=False)
        note(caller, "webhook.disable", webhook_id)
        return webhook_read(sub)

    @r.get("/{webhook_id}/deliveries", response_model=DeliveriesPage)
    def list_deliveries(webhook_id: str, hooks: HooksDep, caller: Admin, _company: CompanyWide,
                        status: Literal["pending", "delivered", "dead"] | None = None, offset: Offset = 0,
                        limit: int = Query(50, ge=1, le=500)) -> DeliveriesPage:
        """A subscription's deliveries, newest first, with status, attempts and the last code or error."""
        commands.get(webhook_id, hooks=hooks)
        items, total = hooks.store.deliveries(webhook_id, status=status, offset=offset, limit=limit)
        return DeliveriesPage(items=[delivery_read(d) for d in items], total=total, offset=offset, limit=limit)

    @r.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryRead, status_code=202)
    def redeliver(webhook_id: str, delivery_id: str, hooks: HooksDep,
                  caller: Admin, _company: CompanyWide) -> DeliveryRead:
        """Send a dead delivery again (a fresh set of tries); 409 unless it is dead."""
        d = commands.redeliver(webhook_id, hooks=hooks, delivery_id=delivery_id)
        note(caller, "webhook.redeliver", webhook_id)
        return delivery_read(d)

    return r
