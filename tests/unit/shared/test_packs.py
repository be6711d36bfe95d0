"""Packs: the messages of one relay for one partition of a services' topic travel as one Kafka message and come
out as they went in, in order; a pack that cannot be read is one message with a fault (dead-lettered whole)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.observability.metrics import ServiceMetrics
from shared.streaming.batch import BatchOutcome
from shared.streaming.consumer import BatchRunner, register_batch_agent
from shared.streaming.packs import PACK_HEADER, PackError, carried, expand, pack, packed, unpack

_header = st.tuples(st.text(max_size=20), st.binary(max_size=60))
_message = st.tuples(st.one_of(st.none(), st.binary(max_size=40)), st.lists(_header, max_size=4),
                     st.binary(max_size=300))


@given(st.lists(_message, max_size=30))
def test_a_pack_gives_back_every_message_with_its_key_headers_and_value_in_order(messages):
    assert unpack(pack(messages)) == [(k, list(h), v) for k, h, v in messages]


def test_a_truncated_or_foreign_pack_is_one_message_marked_with_why():
    value = pack([(b"c_1", [("traceparent", b"00-ab-cd-00")], b'{"kind":"x"}')] * 3)
    for broken in (value[:-1], value[:7], b"\xff" * 40):
        try:
            unpack(broken)
        except PackError:
            pass
        else:
            raise AssertionError("a broken pack was read")
        (one,) = expand(broken, "crm.customer.events", 2, 41, [(PACK_HEADER, b"1")], None, None)
        assert one.value == broken and one.offset == 41 and one.fault and "pack" in one.fault
    (future,) = expand(value, "crm.customer.events", 2, 41, [(PACK_HEADER, b"2")], None, None)
    assert future.fault == "pack format b'2' is not one this version reads"


def test_each_message_of_a_pack_keeps_the_packs_place_and_a_plain_message_is_itself():
    value = pack([(b"c_1", [("k", b"a")], b"one"), (None, [], b"two")])
    out = expand(value, "t", 3, 9, [(PACK_HEADER, b"1")], None, 1.5)
    assert [(m.key, m.headers, m.value, m.topic, m.partition, m.offset, m.timestamp, m.fault) for m in out] == [
        (b"c_1", [("k", b"a")], b"one", "t", 3, 9, 1.5, None), (None, [], b"two", "t", 3, 9, 1.5, None)]
    (plain,) = expand(b"three", "t", 0, 1, [("k", b"b")], b"c_2", None)
    assert (plain.value, plain.key, plain.headers, plain.fault) == (b"three", b"c_2", [("k", b"b")], None)


@dataclass
class _Out:
    topic: str
    value: bytes
    key: bytes | None
    headers: list = field(default_factory=list)


def _partition_of(topic, key):
    return None if topic == "channel" else int(key.decode().split("-")[0]) if key else None


def test_messages_are_packed_per_topic_and_partition_in_order_and_the_rest_go_alone():
    msgs = [_Out("a", b"1", b"0-x"), _Out("a", b"2", b"1-x"), _Out("channel", b"3", b"0-y"), _Out("a", b"4", b"0-z"),
            _Out("b", b"5", b"0-x"), _Out("a", b"6", None), _Out("a", b"7", b"0-w")]
    sent = [(p, [m.value for m in members]) for p, members in packed(msgs, _partition_of)]
    assert sorted(sent, key=str) == sorted([(None, [b"3"]), (None, [b"6"]), (0, [b"1", b"4", b"7"]),
                                            (None, [b"2"]), (None, [b"5"])], key=str)


def test_packs_are_bounded_and_a_message_too_large_for_one_goes_alone_in_its_place():
    msgs = [_Out("a", bytes([i]) * 10, b"0-k") for i in range(7)]
    msgs.insert(3, _Out("a", b"L" * 500, b"0-big"))
    sent = [(p, [m.value[:1] for m in members]) for p, members in packed(msgs, _partition_of, max_bytes=100,
                                                                          max_messages=2)]
    assert sent == [(0, [b"\x00", b"\x01"]), (None, [b"\x02"]), (None, [b"L"]), (0, [b"\x03", b"\x04"]),
                    (0, [b"\x05", b"\x06"])]


@dataclass
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list
    timestamp: int


def test_a_reader_of_a_topic_sees_the_messages_a_pack_carries():
    records = [_Record("t", 0, 5, None, pack([(b"k1", [], b"v1"), (b"k2", [], b"v2")]), [(PACK_HEADER, b"1")], 2000),
               _Record("t", 1, 6, b"k3", b"v3", [], 3000)]
    assert [(m.key, m.value, m.offset, m.timestamp) for m in carried(records)] == [
        (b"k1", b"v1", 5, 2.0), (b"k2", b"v2", 5, 2.0), (b"k3", b"v3", 6, 3.0)]


def test_a_pack_that_carries_no_message_is_one_message_marked_with_why():
    # Nothing to take out of it: handled as nothing, it would leave no trace (no outcome, no dead letter, no count).
    (one,) = expand(b"", "crm.customer.events", 2, 41, [(PACK_HEADER, b"1")], None, None)
    assert (one.value, one.offset, one.fault) == (b"", 41, "the pack carries no message")


def test_a_stop_while_a_pack_larger_than_a_batch_is_handled_lets_every_message_of_it_be_handled_first():
    # faust acknowledges the packs it handed over however the agent leaves its batch (a stop cancels the agent):
    # every message they carry must have been handled by then, not only the part of a batch's size in progress.
    handled: list[bytes] = []
    first_part, release = threading.Event(), threading.Event()

    def handle(batch):
        handled.extend(m.value for m in batch)
        first_part.set()
        release.wait(10)
        return BatchOutcome()

    values = [b"v%d" % i for i in range(5)]
    consume, stream, _ = _agent_taking_one_pack(handle, values)

    async def stop_while_the_first_part_runs():
        agent = asyncio.ensure_future(consume(stream))
        await asyncio.get_running_loop().run_in_executor(None, first_part.wait, 10)
        agent.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await agent

    asyncio.run(stop_while_the_first_part_runs())
    assert handled == values


class _Exited(Exception):
    """What ``os._exit`` is made to raise: it never returns."""


def test_a_part_that_fails_for_good_while_a_stop_waits_ends_the_worker_so_faust_acknowledges_nothing(monkeypatch):
    # Left by the cancel instead, the packs would be acknowledged with their messages never handled.
    exits: list[int] = []

    def exit_(code):
        exits.append(code)
        raise _Exited

    monkeypatch.setattr("shared.streaming.consumer.os._exit", exit_)
    monkeypatch.setattr("shared.streaming.consumer.logging.shutdown", lambda: None)
    first_part, release = threading.Event(), threading.Event()

    def handle(batch):
        if batch[0].value == b"v0":
            first_part.set()
            release.wait(10)
            return BatchOutcome()
        raise RuntimeError("the store refuses, retries exhausted")

    consume, stream, _ = _agent_taking_one_pack(handle, [b"v%d" % i for i in range(4)])

    async def stop_while_the_first_part_runs():
        agent = asyncio.ensure_future(consume(stream))
        await asyncio.get_running_loop().run_in_executor(None, first_part.wait, 10)
        agent.cancel()
        release.set()
        await asyncio.wait([agent])

    asyncio.run(stop_while_the_first_part_runs())
    assert exits == [75]


def _agent_taking_one_pack(handle, values):
    """A service's agent as ``register_batch_agent`` makes it (batches of two messages), and a stream that hands it
    one pack of ``values`` and then waits: a stop comes as a cancel while the agent works."""
    agents: list = []
    app = SimpleNamespace(topic=lambda *names, schema: names, agent=lambda channel, name: agents.append)
    runner = BatchRunner(name="packs", metrics=ServiceMetrics(f"packs{time.monotonic_ns()}"),
                         publish=lambda messages: None, delete_outbox=lambda seqs: None)
    register_batch_agent(app, name="t", topic_names=["crm.customer.events"], runner=runner, batch_size=2,
                         within_s=0.1, handle=handle)
    message = SimpleNamespace(value=pack([(b"k", [], v) for v in values]), topic="crm.customer.events",
                              partition=0, offset=7, headers=[(PACK_HEADER, b"1")], key=None, timestamp=1.0)

    class Stream:
        async def take_events(self, max_, within):
            yield [SimpleNamespace(message=message)]
            await asyncio.Event().wait()

    return agents[0], Stream(), runner


def test_a_backlog_taken_in_one_go_is_counted_consumed_part_by_part_as_each_part_starts():
    # /metrics tells how far a consumer is through what it took, not that it took all of it at once.
    seen: list[float] = []
    runner_box: list = []

    def handle(batch):
        seen.append(runner_box[0].metrics.consumed("crm.customer.events")._value.get())
        return BatchOutcome()

    consume, stream, runner = _agent_taking_one_pack(handle, [b"v%d" % i for i in range(5)])
    runner_box.append(runner)

    async def take_one_pack():
        agent = asyncio.ensure_future(consume(stream))
        await asyncio.get_running_loop().run_in_executor(None, lambda: _until(lambda: len(seen) == 3))
        agent.cancel()
        await asyncio.wait([agent])

    asyncio.run(take_one_pack())
    assert seen == [2, 4, 5]


def _until(done, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline
        time.sleep(0.01)
