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
from shared.storage import is_transient

log = logging.getLogger(__name__)


class _Relayed:
    """A timer's result for the batch runner: its messages were relayed already."""

    def __init__(self) -> None:
        self.outbox: list = []


def _guarded(what: str, work) -> _Relayed:
    """Run a timer's work: transient errors go to the runner (retried); any other failure is logged and the
    next tick tries again, because the runner ends the process on an error it cannot retry."""
    try:
        work()
    except Exception as exc:
        if is_transient(exc):
            raise
        log.exception("alerts: %s failed (%s); trying again at the next tick", what, type(exc).__name__)
    return _Relayed()


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
        return _guarded("scan", lambda: scan.scheduled_scan(deps, owner=owner, relay=runner.relay))

    def refit(_batch):
        return _guarded("churn model refit", lambda: scan.scheduled_refit(deps))

    async def scheduled_scan():
        if deps.config.scan_enabled:
            await runner.run(tick, [])

    async def model_refit():
        await runner.run(refit, [])

    app.timer(interval=deps.config.scan_interval_s, name="alerts.scheduled_scan")(scheduled_scan)
    app.timer(interval=deps.config.model_check_interval_s, name="alerts.model_refit")(model_refit)
