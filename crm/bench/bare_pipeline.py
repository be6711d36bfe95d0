"""The bare pipeline of ``crm bench platform``: the platform's topology doing no work, as the machine's limit.

Run as ``python -m crm.bench.bare_pipeline ROLE BOOTSTRAP PREFIX DATA_DIR``, one process per worker:

- ``identity``: a faust agent that reads the three channel topics and forwards each message unchanged to
  the customer-events topic, and a second agent that counts the view-part messages coming back;
- ``loyalty``, ``alerts``, ``campaigns``: an agent that reads the customer-events topic and publishes one
  small message per event to its view-part topic (the path back to identity).

Each batch is read the way the services read theirs (``take_events``, same batch size and wait) from
topics under PREFIX, made with the services' own faust settings (``faust_app``), and what it sends goes
out the way the services relay their outbox: one ``Publisher.send`` per batch (kafka-python, acks=all,
waited for) in a worker thread while the event loop keeps fetching; faust's own per-message
``topic.send`` cost two to three times as much CPU per event here, so it would understate the limit.
The messages between the stand-ins carry a trace context and a key per customer, as the services' do, so the
relay packs them as it packs the services' (``shared.streaming.packs``), and the consumers take the messages
out of each pack: the same shape as the platform's. After every batch the process prints one JSON line: its
role, its cumulative counts (messages, not packs), and the monotonic time.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import zlib

from shared.contract import topics
from shared.streaming.packs import expand

PART_TOPIC = {"loyalty": topics.LOYALTY_EVENTS, "alerts": topics.ALERTS_EVENTS, "campaigns": topics.CAMPAIGN_EVENTS}
PART = b'{"kind":"view_part","part":"bare"}'
# What every message between the services carries: a trace context (nine in ten sampled out), with which the
# relay packs them as it packs the services' (``shared.streaming.packs``).
TRACE = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")]


def _key(value: bytes) -> bytes:
    # A key per customer, as identity's: the bare forwarder resolves nothing, so a checksum of the event stands in.
    return b"%08x" % zlib.crc32(value)


def _carried(message):
    return expand(message.value or b"", message.topic, message.partition, message.offset,
                  list(message.headers or []), message.key, None)


def main() -> None:
    """Start one worker of the given role."""

    from shared.settings import Settings
    from shared.streaming.faust_transport import raw_topic
    from shared.streaming.kafka import Outgoing, Publisher, faust_app, faust_worker

    role, bootstrap, prefix, data_dir = sys.argv[1:5]
    settings = Settings(_env_file=None, kafka_bootstrap=bootstrap, topic_prefix=prefix, data_dir=data_dir)
    app = faust_app(f"bare-{role}", settings)
    customer = settings.topic(topics.CUSTOMER_EVENTS)
    counts = {"in": 0, "parts": 0}
    publisher = Publisher(settings, client_id=f"bare-{role}")

    async def send(out: list[Outgoing]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, publisher.send, out)

    def report() -> None:
        print(json.dumps({"role": role, "pid": os.getpid(), **counts, "t": time.monotonic()}), flush=True)

    def batches(stream):
        return stream.take_events(settings.batch_size, within=settings.batch_within_s)

    if role == "identity":
        @app.agent(raw_topic(app, *[settings.topic(t) for t in topics.CHANNEL_TOPICS.values()]), name="forward")
        async def forward(stream):
            async for events in batches(stream):
                await send([Outgoing(customer, value, _key(value), TRACE) for e in events
                            if (value := e.message.value or b"")])
                counts["in"] += len(events)
                report()

        @app.agent(raw_topic(app, *[settings.topic(t) for t in topics.VIEW_PART_TOPICS]), name="view-parts")
        async def view_parts(stream):
            async for events in batches(stream):
                counts["parts"] += sum(len(_carried(e.message)) for e in events)
                report()
    else:
        out = settings.topic(PART_TOPIC[role])

        @app.agent(raw_topic(app, customer), name="consume")
        async def consume(stream):
            async for events in batches(stream):
                messages = [m for e in events for m in _carried(e.message)]
                await send([Outgoing(out, PART, m.key, TRACE) for m in messages])
                counts["in"] += len(messages)
                report()

    sys.argv = [sys.argv[0], "worker"]
    faust_worker(app, "warning").execute_from_commandline()


if __name__ == "__main__":
    main()
