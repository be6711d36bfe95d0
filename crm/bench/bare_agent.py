"""The baseline of ``crm bench``: a bare faust agent that only counts the channel events.

Run as ``python -m crm.bench.bare_agent BOOTSTRAP EXPECTED TOPIC…``; it drains the topics in batches
the way the services do (``take_events`` with the same batch size) and prints one JSON line with the
monotonic times of its first and its EXPECTED-th event, then waits to be stopped.
"""

from __future__ import annotations

import json
import sys
import time
import uuid


def main() -> None:
    """Start the counting agent."""
    import faust

    from shared.settings import Settings
    from shared.streaming.kafka import faust_worker

    bootstrap, expected, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    settings = Settings(_env_file=None, kafka_bootstrap=bootstrap)
    app = faust.App(f"bench-bare-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}",
                    broker_session_timeout=settings.session_timeout_s,
                    broker_heartbeat_interval=settings.heartbeat_interval_s, web_enabled=False,
                    topic_disable_leader=True, consumer_auto_offset_reset="earliest",
                    datadir=f"/tmp/crm-bench-bare-{uuid.uuid4().hex[:8]}")
    channel = app.topic(*names, value_serializer="raw", key_serializer="raw")
    state = {"n": 0, "first": None}

    @app.agent(channel)
    async def count(stream):
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_s):
            if state["first"] is None:
                state["first"] = time.monotonic()
            before = state["n"]
            state["n"] += len(events)
            if before < expected <= state["n"]:
                print(json.dumps({"first": state["first"], "last": time.monotonic(), "count": state["n"]}),
                      flush=True)

    sys.argv = [sys.argv[0], "worker"]
    faust_worker(app, "warning").execute_from_commandline()


if __name__ == "__main__":
    main()
