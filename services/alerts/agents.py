"""The alerts service's faust agents and timers: identity and loyalty messages in, alert changes out;
the scheduler that evaluates due customers and the churn-model refit."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

from services.alerts import messages
from services.alerts.handlers import timers
from services.alerts.handlers.timers import ScanChunk
from shared.service import Service
from shared.storage.base import is_transient
from shared.storage.retention import register_retention
from shared.streaming.consumer import register_batch_agent, register_housekeeping
from shared.webhooks import host as webhooks

log = logging.getLogger(__name__)


def _guarded(what: str, work: Callable[[], ScanChunk | object]) -> ScanChunk:
    """Run a timer's work: transient errors go to the runner (retried); any other failure is logged and the
    next tick tries again, because the runner ends the process on an error it cannot retry."""
    try:
        done = work()
    except Exception as exc:
        if is_transient(exc):
            raise
        log.exception("alerts: %s failed (%s); trying again at the next tick", what, type(exc).__name__)
        return ScanChunk()
    return done if isinstance(done, ScanChunk) else ScanChunk()


def scan_tick(service: Service, *, owner: str):
    """The scheduler's tick: the scan unit by unit in the batch thread, never concurrent with a batch of this
    worker, and never holding a batch back for longer than one chunk; the runner relays each unit's outbox."""

    async def run(work: Callable[[], ScanChunk]) -> ScanChunk:
        return await service.runner.run(lambda _batch: _guarded("scan", work), [])

    return timers.scheduled_scan(owner, deps=service.deps, run=run)


async def refit_tick(service: Service) -> None:
    """The refit timer: outside the batch thread, since a fit over the whole base takes seconds and only
    writes the model at the end (a failure is logged; the next tick tries again)."""

    def refit() -> None:
        try:
            timers.scheduled_refit(deps=service.deps)
        except Exception as exc:
            log.exception("alerts: churn model refit failed (%s); trying again at the next tick",
                          type(exc).__name__)

    await asyncio.get_running_loop().run_in_executor(None, refit)


def register(app, service: Service) -> None:
    """Attach the alerts agent and timers to a faust app."""
    settings, deps, runner = service.settings, service.deps, service.runner
    # Issue 14: the topics of the events webhook subscribers receive are read in the same batches, so loyalty's
    # messages, which both want, are consumed and decoded once.
    hooked = webhooks.TOPICS if deps.webhooks is not None else ()
    register_batch_agent(app, name=f"{settings.topic_prefix}alerts-facts",
                         topic_names=[settings.topic(t) for t in dict.fromkeys((*messages.TOPICS, *hooked))],
                         runner=runner, batch_size=settings.batch_size, within_s=settings.batch_within_s,
                         handle=lambda batch: messages.consume(batch, deps=deps))
    register_housekeeping(app, runner=runner, outbox_pending=deps.store.outbox_pending)
    if deps.webhooks is not None:  # issue 14: alert, loyalty and campaign events to webhook subscribers
        webhooks.register(app, hooks=deps.webhooks, service=service)
    owner = f"{socket.gethostname()}:{os.getpid()}"

    async def scheduled_scan():
        if deps.config.scan_enabled:
            await scan_tick(service, owner=owner)

    async def model_refit():
        await refit_tick(service)

    app.timer(interval=deps.config.scan_interval_s, name="alerts.scheduled_scan")(scheduled_scan)
    app.timer(interval=deps.config.model_check_interval_s, name="alerts.model_refit")(model_refit)
    # A timer first fires after its interval: today's models are fitted at start too, so the day's first churn or
    # CLV request reads a kept fit (a request meanwhile waits for this fit rather than starting its own).
    app.task(model_refit)
    # Issue 12, retention (H5): purge what CRM_RETENTION_* says is too old.
    register_retention(app, name=f"{settings.topic_prefix}alerts", interval_s=settings.retention_interval_s,
                       purge=lambda: timers.purge_expired(deps=deps))
