"""The consumer's hand-over of a fetched message to its stream: mode's answers, without its four tasks a message.

faust's ``_drain_messages`` hands each message over as ``wait_first(callback(message), suspend_flow.wait())``;
these tests call it that way on the consumer our transport builds (nothing connects)."""

from __future__ import annotations

import asyncio
import warnings

import faust
import pytest
from mode.services import Service

from shared.streaming.faust_transport import use_short_fetch_wait


def _consumer():
    app = faust.App("handover", broker="kafka://127.0.0.1:1")
    use_short_fetch_wait(app, 100)
    return app.consumer


def _run(body):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would warn
        return asyncio.run(body())


def test_a_callback_done_in_one_step_is_the_answer_and_leaves_no_task_behind():
    async def body():
        consumer = _consumer()
        stepped = []

        async def callback():
            stepped.append(1)
            return "queued"

        before = len(asyncio.all_tasks())
        result = await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        await asyncio.sleep(0)
        return result, stepped, len(asyncio.all_tasks()) - before

    result, stepped, tasks_left = _run(body)
    assert (result.results, result.stopped, stepped, tasks_left) == (["queued"], False, [1], 0)


def test_a_callback_still_waiting_after_its_first_step_is_waited_for_as_mode_does():
    async def body():
        consumer = _consumer()
        room = asyncio.Event()

        async def callback():  # a full stream queue: the message goes in when there is room
            await room.wait()
            return "queued late"

        asyncio.get_running_loop().call_later(0.05, room.set)
        return await consumer.wait_first(callback(), consumer.suspend_flow.wait())

    result = _run(body)
    assert (result.results, result.stopped) == (["queued late"], False)


def test_a_suspended_flow_abandons_a_blocked_hand_over():
    async def body():
        consumer = _consumer()
        cancelled = []

        async def callback():
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        asyncio.get_running_loop().call_later(0.05, consumer.suspend_flow.set)
        result = await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        await asyncio.sleep(0)
        return result, cancelled

    result, cancelled = _run(body)
    assert (len(result.done), result.results, result.stopped, cancelled) == (1, [True], False, [True])


def test_while_the_flow_is_suspended_every_hand_over_goes_through_mode():
    async def body():
        consumer = _consumer()
        consumer.suspend_flow.set()

        async def callback():
            return "queued"

        return await consumer.wait_first(callback(), consumer.suspend_flow.wait())

    result = _run(body)
    assert result.stopped is False and sorted(map(str, result.results)) == ["True", "queued"]


def test_what_the_callback_raises_is_raised():
    async def body():
        consumer = _consumer()

        async def callback():
            raise ValueError("no stream for this topic")

        await consumer.wait_first(callback(), consumer.suspend_flow.wait())

    with pytest.raises(ValueError, match="no stream"):
        _run(body)


def test_a_stopped_consumer_answers_stopped_as_mode_does():
    async def body():
        consumer = _consumer()
        consumer._stopped.set()

        async def callback():
            return "queued"

        ours = await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        theirs = await Service.wait_first(consumer, callback(), consumer.suspend_flow.wait())
        return ours, theirs

    ours, theirs = _run(body)
    assert ours.stopped is theirs.stopped is True


def test_a_hand_over_cancelled_while_its_callback_waits_cancels_the_callback_as_mode_does():
    # The fetcher's task is cancelled (a stop, a rebalance) while the stream's queue is full: mode cancels the
    # callback, so the message is not put in a stream whose partition may be gone (it is fetched again).
    async def body():
        consumer = _consumer()
        room = asyncio.Event()
        delivered = []

        async def callback():
            await room.wait()
            delivered.append("late")

        handover = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
        await asyncio.sleep(0)  # the hand-over starts its callback, which waits for room
        handover.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handover
        room.set()
        for _ in range(3):
            await asyncio.sleep(0)
        return delivered

    assert _run(body) == []
