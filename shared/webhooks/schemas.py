"""The webhook routes' schema families: ``WebhookCreate``/``WebhookUpdate``/``WebhookRead``/``WebhooksPage`` and
``DeliveryRead``/``DeliveriesPage``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal["alert.opened", "alert.escalated", "points.expiring", "tier.changed", "campaign.touch"]


class WebhookCreate(BaseModel):
    """A new subscription; without ``secret`` one is generated and shown once in the answer."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="http(s) URL the deliveries are POSTed to")
    event_types: list[EventType] = Field(min_length=1, max_length=5)
    secret: str | None = Field(None, min_length=16, max_length=200,
                               description="signing secret (at least 16 characters); generated when absent")
    description: str | None = Field(None, max_length=200)


class WebhookUpdate(BaseModel):
    """A change to a subscription: any of its URL, event types, description, enabled."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2048)
    event_types: list[EventType] | None = Field(None, min_length=1, max_length=5)
    description: str | None = Field(None, max_length=200)
    enabled: bool | None = None


class WebhookRead(BaseModel):
    """A subscription as the API shows it (never its secret, except ``secret`` once at creation)."""

    webhook_id: str
    url: str
    event_types: list[str]
    enabled: bool
    description: str | None
    created_by: str
    created_at: str
    updated_at: str
    secret: str | None = Field(None, description="the generated signing secret: in the creation's answer only")


class WebhooksPage(BaseModel):
    """Every subscription."""

    items: list[WebhookRead]
    total: int


class DeliveryRead(BaseModel):
    """One event for one subscriber and how sending it went."""

    delivery_id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: str | None = Field(description="when a pending delivery is tried next")
    last_status_code: int | None
    last_error: str | None
    dead_reason: str | None
    created_at: str
    updated_at: str | None


class DeliveriesPage(BaseModel):
    """A subscription's deliveries, newest first."""

    items: list[DeliveryRead]
    total: int
    offset: int
    limit: int
