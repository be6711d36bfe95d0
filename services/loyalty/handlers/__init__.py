"""What loyalty's handlers are given: ``Deps``, built in ``app.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.loyalty.config import LoyaltySettings, RulesSource
from services.loyalty.store import LoyaltyStore
from shared.clock import Clock
from shared.contract import topics
from shared.observability.trace_context import Headers
from shared.settings import Settings
from shared.storage.base import OutboxMessage
from shared.streaming.outbox import outbox_message


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

    def message(self, body: Any, key: str, *, headers: Headers | None = None) -> OutboxMessage:
        """An outbox message on loyalty's topic, keyed by the customer (``headers``: the trace context made
        once for several messages, ``trace_context.shared_headers``)."""
        return outbox_message(self.settings, topics.LOYALTY_EVENTS, key, body, headers=headers)
