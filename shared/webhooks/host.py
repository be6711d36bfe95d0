"""What a service hosting webhooks holds (``Webhooks``) and its faust wiring: the recording agent over the topics
that carry the subscribed events, and the dispatcher started with the worker.

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
from shared.streaming.batch import Incoming
from shared.webhooks.config import WebhooksConfig
from shared.webhooks.dispatch import Dispatcher
from shared.webhooks.record import record
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

    def consume(self, batch: list[Incoming], *, host_store: Any, service: str, prefix: str):
        """Record a batch's deliveries (in the host's store transaction), then wake the dispatcher."""
        outcome = record(batch, host_store=host_store, webhooks=self.store, service=service, prefix=prefix,
                         clock=self.clock)
        if outcome.counts["webhook_deliveries"]:
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
    """Attach the recording agent (its own agent, fed through the host's batch runner) and start the dispatcher
    with the worker."""
    from shared.streaming.consumer import register_batch_agent

    settings = service.settings
    register_batch_agent(app, name=f"{settings.topic_prefix}{service.name}-webhooks",
                         topic_names=[settings.topic(t) for t in TOPICS], runner=service.runner,
                         batch_size=settings.batch_size, within_s=settings.batch_within_s,
                         handle=lambda batch: hooks.consume(batch, host_store=service.store, service=service.name,
                                                            prefix=settings.topic_prefix))

    @app.task
    async def start_dispatcher() -> None:
        if hooks.config.enabled:
            hooks.dispatcher.start()
            log.info("%s: webhook dispatcher started", service.name)
