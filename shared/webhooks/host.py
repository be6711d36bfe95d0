"""What a service hosting webhooks holds (``Webhooks``) and its faust wiring: the dispatcher started with the
worker. The host's own consumer reads ``TOPICS`` too and records each batch's deliveries (``Webhooks.record``)
in its batch: one consumer, one decode per message.

The alerts service hosts them (routes on its port, 8003): it is the service ops already watch, and the
events come from three services' topics, which any one consumer group can read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared.clock import Clock
from shared.contract import topics
from shared.contract.messages import CustomerErased
from shared.streaming.batch import BatchOutcome
from shared.webhooks.config import WebhooksConfig
from shared.webhooks.dispatch import Dispatcher
from shared.webhooks.record import decode_subscribed, record
from shared.webhooks.store import WebhookStore

log = logging.getLogger(__name__)

# Where the subscribed events are published: alerts (alert changes), loyalty (expiry notices, tier changes),
# campaigns (touches).
TOPICS = (topics.ALERTS_EVENTS, topics.LOYALTY_EVENTS, topics.CAMPAIGN_TOUCHES)


@dataclass
class Webhooks:
    """A host's webhook parts: the store (in the host's database), settings, clock and dispatcher."""

    store: WebhookStore
    config: WebhooksConfig
    clock: Clock
    dispatcher: Dispatcher

    @staticmethod
    def decode(raw: bytes) -> Any:
        """A consumed message of a kind subscribers may receive; None for any other (not parsed)."""
        return decode_subscribed(raw)

    def record(self, messages: list[Any], *, outcome: BatchOutcome) -> None:
        """Record the deliveries of a batch's decoded messages (none naming an erased customer) in the host's
        batch transaction; counted ``webhook_deliveries``. :meth:`committed` once the batch has committed."""
        outcome.counts["webhook_deliveries"] += record(messages, webhooks=self.store, clock=self.clock)

    def committed(self, outcome: BatchOutcome) -> BatchOutcome:
        """A batch that recorded deliveries has committed: the dispatcher looks for them now."""
        if outcome.counts.get("webhook_deliveries"):
            self.dispatcher.wake()
        return outcome

    def erase(self, erasures: list[CustomerErased], *, host_store: Any) -> int:
        """Delete every delivery about these erased customers (each of their records, merged ones too), in the
        host's erasure transaction: pending ones are never sent. ``host_store`` answers ``records_of``."""
        ids = {i for m in erasures for i in (m.customer_id, *m.records, *host_store.records_of(m.customer_id))}
        return self.store.customers_erase(sorted(ids))


def build_webhooks(store: WebhookStore, *, clock: Clock, config: WebhooksConfig | None = None) -> Webhooks:
    """The webhook parts over a store the host's composition root picked."""
    config = config or WebhooksConfig()
    return Webhooks(store=store, config=config, clock=clock, dispatcher=Dispatcher(store, config))


def register(app, *, hooks: Webhooks, service: Any) -> None:
    """Start the dispatcher with the worker (the host's own consumer records the deliveries)."""

    @app.task
    async def start_dispatcher() -> None:
        if hooks.config.enabled:
            hooks.dispatcher.start()
            log.info("%s: webhook dispatcher started", service.name)
