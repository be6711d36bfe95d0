"""The alerts service's faust agents and timers: identity and loyalty messages in, alert changes out;
the scheduler that evaluates due customers and the churn-model refit."""

from __future__ import annotations

import logging
import os
import socket

from services.alerts import handlers, scan
from shared import topics
from shared.consumer import register_batch_agent, register_housekeeping
from shared.service import Service

log = logging.getLogger(__name__)


class _Relayed:
    """A timer's result for the batch runner: only messages already relayed."""

    outbox: list = []


def register(app, service: Service) -> None:
    """Attach the alerts agent and timers to a faust app."""
    settings, deps, runner = service.settings, service.deps, service.runner
    register_batch_agent(app, name=f"{settings.topic_prefix}alerts-facts",
                         topic_names=[settings.topic(t) for t in (topics.CUSTOMER_EVENTS, topics.CUSTOMER_MERGED,
                                                                   topics.LOYALTY_EVENTS)],
                         runner=runner, batch_size=settings.batch_size, within_s=settings.batch_within_s,
                         handle=lambda messages: handlers.consume_batch(messages, deps))
    register_housekeeping(app, runner=runner, outbox_pending=deps.store.outbox_pending)
    owner = f"{socket.gethostname()}:{os.getpid()}"

    def tick(_batch):
        # In the batch thread: never concurrent with a batch of this worker; the lease keeps other
        # workers out, and what the scan writes is relayed chunk by chunk.
        scan.scheduled_scan(deps, owner=owner, relay=runner.relay)
        return _Relayed()

    def refit(_batch):
        scan.scheduled_refit(deps)
        return _Relayed()

    async def scheduled_scan():
        if deps.config.scan_enabled:
            await runner.run(tick, [])

    async def model_refit():
        await runner.run(refit, [])

    app.timer(interval=deps.config.scan_interval_s, name="alerts.scheduled_scan")(scheduled_scan)
    app.timer(interval=deps.config.model_refit_interval_s, name="alerts.model_refit", on_leader=False)(model_refit)
