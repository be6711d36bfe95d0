"""Loyalty's faust agents and timers: identity's events, merges and campaign grants in; the schedule
that makes expiry, expiry notices and tier reviews happen on time without anyone running a command."""

from __future__ import annotations

from services.loyalty import messages
from services.loyalty.handlers import timers
from shared.contract import topics
from shared.service import Service
from shared.storage.retention import register_retention
from shared.streaming.consumer import register_batch_agent, register_housekeeping


def register(app, service: Service) -> None:
    """Attach loyalty's agent and timers to a faust app."""
    settings, deps = service.settings, service.deps
    register_batch_agent(app, name=f"{settings.topic_prefix}loyalty-ledger",
                         topic_names=[settings.topic(t) for t in (topics.CUSTOMER_EVENTS, topics.CUSTOMER_MERGED,
                                                                  topics.CUSTOMER_OWNERS, topics.CAMPAIGN_EVENTS)],
                         runner=service.runner, batch_size=settings.batch_size, within_s=settings.batch_within_s,
                         handle=lambda batch: messages.consume(batch, deps=deps))
    register_housekeeping(app, runner=service.runner, outbox_pending=deps.store.outbox_pending)

    async def run_schedule():
        # Every worker runs it; settling is idempotent, so two workers on one account post once.
        await service.runner.run(lambda _: timers.run_due(deps=deps), [])

    app.timer(interval=deps.config.schedule_interval_s, name="loyalty.schedule")(run_schedule)
    # Issue 12, retention (H5): purge what CRM_RETENTION_* says is too old.
    register_retention(app, name=f"{settings.topic_prefix}loyalty", interval_s=settings.retention_interval_s,
                       purge=lambda: timers.purge_expired(deps=deps))
