"""Webhook settings (``CRM_WEBHOOKS_*``): how hard and how often the dispatcher tries."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhooksConfig(BaseSettings):
    """Delivery timeouts, retries and concurrency, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="CRM_WEBHOOKS_", env_file=".env", extra="ignore")

    enabled: bool = True  # the dispatcher runs in the host's worker; off: deliveries wait, still recorded
    timeout_s: float = Field(10.0, gt=0, le=120)  # per request: connect, send, wait for the answer
    max_attempts: int = Field(8, ge=1, le=50)  # then the delivery is dead (redeliverable by hand)
    backoff_s: float = Field(30.0, gt=0)  # the wait after the first failure, doubling after each next one
    backoff_max_s: float = Field(6 * 3600.0, gt=0)
    concurrency: int = Field(8, ge=1, le=256)  # requests in flight at once, over all subscribers
    poll_s: float = Field(1.0, gt=0, le=60)  # how often the dispatcher looks for due deliveries
    # Delivered and dead deliveries are forgotten this long after their last try (pending ones never are).
    keep_days: float = Field(30.0, gt=0)
    # Refuse subscriber URLs on loopback, private, link-local or reserved addresses (SSRF: a subscription must
    # not make the service call cloud metadata or internal systems). On by default; turn it off only where the
    # receivers are on the same machine or network and only operators can subscribe.
    block_private: bool = True
