"""The agents' topics hand over each message's key and value bytes exactly as faust's raw codec did."""

from __future__ import annotations

import asyncio
import time

import faust
from faust.types.tuples import Message

from shared.streaming.faust_transport import RawSchema, raw_topic


def _decode(schema, message):
    app = faust.App("rawtest", broker="kafka://127.0.0.1:1")
    return asyncio.run(schema.compile(app)(message))


def _message(key, value):
    return Message("crm.customer-events", 2, 41, time.time(), 0, [("traceparent", b"00-ab")], key, value, None)


def test_events_carry_the_same_bytes_as_the_raw_codec():
    faust_raw = faust.Schema(key_serializer="raw", value_serializer="raw")
    for key, value in [(b"cust-1", b'{"kind":"purchase"}'), (None, b"\x00\xff binary"), (b"k", b"")]:
        ours, theirs = _decode(RawSchema(), _message(key, value)), _decode(faust_raw, _message(key, value))
        assert (ours.key, ours.value) == (theirs.key, theirs.value) == (key, value)
        assert ours.headers == theirs.headers


def test_raw_topic_uses_the_raw_schema():
    app = faust.App("rawtest", broker="kafka://127.0.0.1:1")
    topic = raw_topic(app, "a", "b")
    assert isinstance(topic.schema, RawSchema)
    assert set(topic.topics) == {"a", "b"}
