"""Identity's faust agents: channel topics in, resolved customer events and merges out."""

from __future__ import annotations

import logging

from services.identity import handlers
from shared import topics
from shared.consumer import BatchRunner

log = logging.getLogger(__name__)


def register(app, service) -> None:
    """Attach identity's agents and timers to a faust app."""
    settings = service.settings
    channel = app.topic(*[settings.topic(t) for t in topics.CHANNEL_TOPICS.values()],
                        value_serializer="raw", key_serializer="raw")
    runner = BatchRunner(name="identity", metrics=service.metrics, publish=service.publish,
                         delete_outbox=service.deps.store.outbox_delete)
    service.runner = runner

    def handle(batch: list[handlers.Incoming]) -> handlers.BatchOutcome:
        outcome = handlers.resolve_batch(batch, service.deps)
        m = service.metrics
        m.outcomes("processed").inc(outcome.processed)
        m.outcomes("duplicate").inc(outcome.duplicates)
        m.outcomes("dead_lettered").inc(outcome.dead_lettered)
        m.merges.inc(outcome.merges)
        return outcome

    @app.agent(channel, name=f"{settings.topic_prefix}identity-resolve")
    async def resolve(stream):
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            batch = []
            for e in events:
                msg = e.message
                service.metrics.consumed(msg.topic).inc()
                batch.append(handlers.Incoming(msg.value or b"", msg.topic, msg.partition, msg.offset,
                                               list(msg.headers or [])))
            await runner.run(handle, batch, events[0].message.headers)

    @app.timer(interval=1.0)
    async def note_assignment():
        service.metrics.assigned.set(len(app.consumer.assignment()))

    @app.timer(interval=5.0)
    async def sweep_outbox():
        # Messages a crashed worker committed but never published.
        pending = service.deps.store.outbox_pending(limit=5000, older_than_s=15.0)
        if pending:
            log.info("relaying %d outbox messages left by an earlier run", len(pending))
            await runner.run(lambda _: _Relay(pending), [])


class _Relay:
    def __init__(self, outbox) -> None:
        self.outbox = outbox
