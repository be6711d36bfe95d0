"""Identity's faust agents: channel topics in, resolved customer events and merges out; the other
services' parts of the single customer view in."""

from __future__ import annotations

from services.identity import messages
from services.identity.handlers import timers
from shared.contract import topics
from shared.service import Service
from shared.storage.retention import register_retention
from shared.streaming.consumer import register_batch_agent, register_housekeeping


def register(app, service: Service) -> None:
    """Attach identity's agents and timers to a faust app."""
    settings, deps = service.settings, service.deps
    batch = dict(runner=service.runner, batch_size=settings.batch_size, within_s=settings.batch_within_s)
    register_batch_agent(app, name=f"{settings.topic_prefix}identity-resolve",
                         topic_names=[settings.topic(t) for t in topics.CHANNEL_TOPICS.values()],
                         handle=lambda consumed: messages.consume(consumed, deps=deps), **batch)
    register_batch_agent(app, name=f"{settings.topic_prefix}identity-view-parts",
                         topic_names=[settings.topic(t) for t in topics.VIEW_PART_TOPICS],
                         handle=lambda consumed: messages.consume(consumed, deps=deps), **batch)
    register_housekeeping(app, runner=service.runner, outbox_pending=deps.store.outbox_pending)
    # Issue 12, retention (H5): purge what CRM_RETENTION_* says is too old.
    register_retention(app, name=f"{settings.topic_prefix}identity", interval_s=settings.retention_interval_s,
                       purge=lambda: timers.purge_expired(deps=deps))
