"""What loyalty's handlers are given: ``Deps``, built in ``app.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.loyalty.config import LoyaltySettings, RulesSource
from services.loyalty.store import LoyaltyStore
from shared import topics
from shared.clock import Clock
from shared.settings import Settings
from shared.storage import OutboxMessage
from shared.tracing import message_headers


def _kept(outbox: list[OutboxMessage]) -> None:
    # Without a relay (handlers driven directly) the committed outbox waits for the housekeeping relay.
    return None


@dataclass
class Deps:
    """What loyalty's handlers need, passed in: store, rules, settings, clock, relay."""

    store: LoyaltyStore
    settings: Settings
    config: LoyaltySettings
    rules: RulesSource
    clock: Clock
    zone: Any = field(default=None)
    # Publishes what an API call committed to the outbox, now (the service's relay).
    relay: Callable[[list[OutboxMessage]], None] = _kept

    def __post_init__(self) -> None:
        if self.zone is None:
            from zoneinfo import ZoneInfo

            self.zone = ZoneInfo(self.settings.timezone)

    def message(self, body: Any, key: str) -> OutboxMessage:
        """An outbox message on loyalty's topic, keyed by the customer."""
        topic = self.settings.topic(topics.LOYALTY_EVENTS)
        return OutboxMessage(topic, body.model_dump_json().encode(), key.encode(), message_headers(topic, key=key))
