"""The webhook use cases behind the routes: create, change, disable a subscription; redeliver a dead delivery."""

from __future__ import annotations

import secrets
from dataclasses import replace

from shared.clock import iso_utc
from shared.http.errors import Conflict, InvalidInput, NotFound
from shared.webhooks import signing
from shared.webhooks.host import Webhooks
from shared.webhooks.store import Delivery, Subscription
from shared.webhooks.urls import UnsafeUrl, check_url


def _url(url: str, *, hooks: Webhooks) -> str:
    try:
        return check_url(url, block_private=hooks.config.block_private)
    except UnsafeUrl as exc:
        raise InvalidInput("invalid_url", f"url: {exc}", details={"field": "url"}) from None


def _types(event_types: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(event_types))  # in the order given, each once


def create(url: str, *, hooks: Webhooks, event_types: list[str], secret: str | None, description: str | None,
           actor: str) -> tuple[Subscription, str | None]:
    """A new enabled subscription, and its secret when it was generated (to be shown this once)."""
    generated = signing.new_secret() if secret is None else None
    now = iso_utc(hooks.clock())
    sub = Subscription("wh_" + secrets.token_hex(8), _url(url, hooks=hooks), _types(event_types),
                       secret or generated or "", True, description, actor, now, now)
    hooks.store.subscription_add(sub)
    hooks.dispatcher.wake()
    return sub, generated


def get(webhook_id: str, *, hooks: Webhooks) -> Subscription:
    """One subscription; 404 when there is none."""
    sub = hooks.store.subscription(webhook_id)
    if sub is None:
        raise NotFound("webhook_not_found", "no webhook subscription with this id")
    return sub


def update(webhook_id: str, *, hooks: Webhooks, url: str | None = None, event_types: list[str] | None = None,
           description: str | None = None, enabled: bool | None = None) -> Subscription:
    """Change a subscription; re-enabling one sends what waited for it."""
    sub = get(webhook_id, hooks=hooks)
    sub = replace(sub, url=sub.url if url is None else _url(url, hooks=hooks),
                  event_types=sub.event_types if event_types is None else _types(event_types),
                  description=sub.description if description is None else description,
                  enabled=sub.enabled if enabled is None else enabled, updated_at=iso_utc(hooks.clock()))
    hooks.store.subscription_put(sub)
    hooks.dispatcher.wake()
    return sub


def redeliver(webhook_id: str, *, hooks: Webhooks, delivery_id: str) -> Delivery:
    """Send a dead delivery again, with a fresh set of tries; 409 unless it is dead."""
    get(webhook_id, hooks=hooks)
    d = hooks.store.delivery(delivery_id)
    if d is None or d.webhook_id != webhook_id:
        raise NotFound("delivery_not_found", "no delivery with this id for this webhook")
    if d.status != "dead":
        raise Conflict("delivery_not_dead", f"only a dead delivery is redelivered by hand; this one is {d.status}")
    again = replace(d, status="pending", attempts=0, next_ms=0, lease_ms=0, dead_reason=None,
                    updated_at=iso_utc(hooks.clock()))
    hooks.store.delivery_update(again)
    hooks.dispatcher.wake()
    return again
