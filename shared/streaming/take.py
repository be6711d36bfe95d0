"""faust's ``Stream.take_events`` with a wait that adapts: what queued up during a batch is taken at once.

faust (``faust/streams.py``, ``take_events``) collects a batch by waiting ``within`` seconds or until
``max_`` events are in, and it opens that wait only once the previous batch has been processed: while
it is, one event waits in the buffering processor (``await buffer_consuming``) and the others in the
stream's channel queue. So events that arrived during a batch waited a whole window after it, and each
hop's latency was the window plus the batch. Here, when a batch ends with events waiting, the next
batch is what was waiting (up to ``max_``), taken as soon as the queue is drained into it; only when
nothing waits does the window open, so a trickle of events is still batched.

Everything else is faust's, line for line: the buffering processor run by the stream's passive drainer,
events acknowledged only after the consumer of the batch has finished with it (the code after
``yield``), never more than ``max_`` in a batch, the generator tracked so a stopping stream closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from faust.types.topics import ChannelT
from mode.utils.aiter import aiter
from mode.utils.futures import notify


def take_batches(stream: Any, max_: int, within_s: float) -> AsyncGenerator[list, None]:
    """Batches of at most ``max_`` events of ``stream``: those that waited while the last batch was
    processed, taken at once; otherwise whatever arrives within ``within_s`` (or ``max_`` sooner)."""
    agen = _take_batches(stream, max_, within_s)
    stream._active_agens.add(agen)  # as faust's @_tracks_buffer_agen: Stream.on_stop closes it
    return agen


async def _take_batches(stream: Any, max_: int, within_s: float) -> AsyncGenerator[list, None]:
    events: list = []
    full = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future | None = None  # set while a batch is out: the processor waits for it
    held = False  # an event came while the batch was out and waits in the processor
    draining = False  # the batch ended with events waiting: end the next one once they are all in
    # The queue the stream's iterator reads from (faust's StreamIterator: ``stream.channel.queue``).
    queue = stream.channel.queue if isinstance(stream.channel, ChannelT) else None
    enable_acks = stream.enable_acks

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming, held, draining
        try:
            if consuming is not None:
                held = held or not consuming.done()
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("Take buffer found current_event is None")
            events.append(event)
            if len(events) >= max_:
                full.set()
                # Never more than max_ in a batch: wait until this one is taken.
                consumed.clear()
                await stream.wait(consumed)
            elif draining and queue is not None and queue.empty():
                draining = False  # everything that waited is in: no window for it
                full.set()
        except asyncio.CancelledError:  # pragma: no cover
            raise
        except Exception as exc:  # pragma: no cover (faust's own handling)
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # events are acknowledged here, once their batch has been processed
    stream.add_processor(add_to_buffer)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(full, timeout=within_s)
            if events:
                consuming = asyncio.get_running_loop().create_future()
                try:
                    yield list(events)
                finally:
                    for event in events:
                        await stream.ack(event)
                    events.clear()
                    draining = held or (queue is not None and not queue.empty())
                    held = False
                    notify(consuming)
                    full.clear()
                    consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)
