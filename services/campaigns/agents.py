"""Campaigns' faust agents and timers: identity's and loyalty's events in; scheduled launches on time."""

from __future__ import annotations

import asyncio

from services.campaigns import messages
from services.campaigns.handlers import timers
from shared.contract import topics
from shared.service import Service
from shared.storage.retention import register_retention
from shared.streaming.consumer import register_batch_agent, register_housekeeping


def register(app, service: Service) -> None:
    """Attach campaigns' agent, its scheduler and the shared housekeeping timers to a faust app."""
    settings, deps = service.settings, service.deps
    register_batch_agent(app, name=f"{settings.topic_prefix}campaigns-facts",
                         topic_names=[settings.topic(t) for t in (topics.CUSTOMER_EVENTS, topics.CUSTOMER_MERGED,
                                                                  topics.CUSTOMER_OWNERS, topics.LOYALTY_EVENTS)],
                         runner=service.runner, batch_size=settings.batch_size, within_s=settings.batch_within_s,
                         handle=lambda batch: messages.consume(batch, deps=deps))
    # The sweeper leaves alone the rows a launch's relay holds (see ``store.leases``).
    register_housekeeping(app, runner=service.runner, outbox_pending=deps.store.outbox_unleased)

    async def scheduler():
        # Off the event loop, with the runner's retries; what a launch writes is relayed after it commits.
        await service.runner.run(lambda _: timers.run_due(deps=deps, relay=service.runner.relay), [])

    app.timer(interval=deps.config.scheduler_interval_s, name=f"{settings.topic_prefix}campaigns.scheduler")(scheduler)

    # Built as the worker starts, before the first preview or results request asks for them, and brought forward on
    # a timer while people use them; outside the batch thread and the event loop: reading 100,000 customers'
    # facts again, or measuring a campaign of 100,000 members, takes seconds.
    for name, interval, keep in (("preview_index", deps.config.preview_keep_interval_s, timers.keep_preview),
                                 ("results", deps.config.results_keep_interval_s, timers.keep_results)):
        app.timer(interval=interval, name=f"{settings.topic_prefix}campaigns.{name}")(
            _off_loop(lambda keep=keep: keep(deps=deps)))
        app.task(_off_loop(lambda keep=keep: keep(deps=deps, warm=True)))
    # Issue 12, retention (H5): purge what CRM_RETENTION_* says is too old.
    register_retention(app, name=f"{settings.topic_prefix}campaigns", interval_s=settings.retention_interval_s,
                       purge=lambda: timers.purge_expired(deps=deps))


def _off_loop(work):
    """A coroutine function running ``work()`` in the loop's default executor."""
    async def run():
        await asyncio.get_running_loop().run_in_executor(None, work)
    return run
