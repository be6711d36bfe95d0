"""faust's aiokafka transport with a shorter fetch wait and a cheaper hand-over of each fetched message.

faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and offers no setting for it.
Against the embedded broker an idle partition then answers a fetch only when that wait runs out,
so every event waited about half a second before identity saw it. A consumer that waits at most
``fetch_max_wait_ms`` (100 ms by default, ``CRM_FETCH_MAX_WAIT_MS``) sees it in a few milliseconds;
under load fetches return as soon as data is there, so throughput is unchanged.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any

from faust.sensors import Monitor
from faust.serializers.schemas import Schema
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 100

    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts (it builds its fetcher then).
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """mode's ``wait_first``, with a shortcut for the hand-over of a fetched message to its stream.

        faust hands every message over as ``wait_first(callback(message), suspend_flow.wait())``: a task for
        each of those and for the consumer's stopped and crashed events, ``asyncio.wait``, then three tasks
        cancelled, about 24 us of CPU per consumed message. Here, while the flow is not suspended and the
        consumer neither stopped nor crashed, the callback runs as one task for one step of the loop; it has
        nearly always put the message in its stream's queue by then, which is the answer mode would give
        (the callback first, alone). A callback still waiting after that step (its stream's queue full) and
        every other call go through mode's own ``wait_first``, so a rebalance abandons a blocked hand-over
        as before."""
        quiet = not (self.suspend_flow.is_set() or self._stopped.is_set() or self._crashed.is_set())
        if not (quiet and len(coros) == 2 and _waits_on(coros[1], self.suspend_flow)
                and asyncio.iscoroutine(coros[0])):
            return await super().wait_first(*coros, timeout=timeout)
        handed = asyncio.ensure_future(coros[0])
        try:
            await asyncio.sleep(0)  # the callback's first step runs before this resumes
        except BaseException:
            # Cancelled (a stop, a rebalance) in that step: the callback is cancelled, as mode's ``finally`` does,
            # so a message still waiting for room is not put in its stream later.
            handed.cancel()
            coros[1].close()
            raise
        if not handed.done() or self.suspend_flow.is_set():
            return await super().wait_first(handed, coros[1], timeout=timeout)
        coros[1].close()  # never started: the suspension it would have waited for did not come
        result = handed.result()  # raises what the callback raised, as mode's does
        if self._stopped.is_set() or self._crashed.is_set():
            return WaitResults([], [], True)
        return WaitResults([coros[0]], [result], False)


def _waits_on(coro: Any, event: asyncio.Event) -> bool:
    # Whether ``coro`` is ``event.wait()`` not yet started (its frame holds the event it was called on).
    frame = getattr(coro, "cr_frame", None)
    return frame is not None and getattr(coro, "cr_code", None) is asyncio.Event.wait.__code__ \
        and frame.f_locals.get("self") is event


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport whose worker consumers use :attr:`_ConsumerThread.fetch_max_wait_ms`."""

    Consumer = _Consumer


def use_short_fetch_wait(app, fetch_max_wait_ms: int) -> None:
    """Give a faust app the transport above (creating it connects nothing)."""
    _ConsumerThread.fetch_max_wait_ms = fetch_max_wait_ms
    app.transport = Transport(app.conf.broker_consumer, app)


class LeanMonitor(Monitor):
    """faust's Monitor recording, per message, only what faust itself reads: when each partition's stream
    last took an event (``stream_inbound_time``, for the slow-processing warnings).

    The Monitor's other per-message figures (counts by topic, stream and task, event runtimes, message times)
    are shown only by faust's web views and statistics sensors, which the platform does not run (its
    metrics are its own, in ``shared.observability.metrics``); they were four sensor calls per message,
    a few percent of a consumer's CPU. Everything the Monitor records per commit, assignment or rebalance
    is kept.
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass


class RawSchema(Schema):
    """Keys and values as the broker gave them, without faust's serializer registry.

    The agents read ``event.message.key`` and ``.value`` (bytes) and never the decoded ones, and the
    ``raw`` codec returns those same bytes: going through the registry and codec per message was a few
    percent of a consumer's CPU for nothing.
    """

    def __init__(self) -> None:
        super().__init__(key_serializer="raw", value_serializer="raw")

    def loads_key(self, app, message, *, loads=None, serializer=None):
        return message.key

    def loads_value(self, app, message, *, loads=None, serializer=None):
        return message.value


def raw_topic(app, *names: str):
    """A faust topic over ``names`` whose events carry the message's bytes undecoded."""
    return app.topic(*names, schema=RawSchema())
