"""Packs: the messages one relay sends to one partition of a topic between the services, as one Kafka message.

faust, mode and aiokafka cost about as much CPU per consumed message as a service's handler spends on its event
(``deploy/SCALING.md``), and every channel event became four to six messages between the services, each consumed
by one to three of them. A pack carries the messages a relay has for one partition of one of the topics only
the services read (:data:`PACKED_TOPICS`), in order, each with its own key, headers (its trace context, its
kind) and value, unchanged: consumers take them out (:func:`expand`) and handle each as the message it was.
Everything per message stays per message: its fate (processed once, duplicate, dead-lettered alone, with the
pack's topic, partition and offset), its trace, its counts. Channel topics, the dead-letter topic and the
touches channel systems read are never packed; a message alone for its partition goes out as itself.

A pack's value is the messages one after another, each as::

    key length (4 bytes, signed, -1: no key), header count (2), then the key,
    per header: name length (2), value length (4), name (UTF-8), value
    value length (4), value

big-endian, under the header ``crm.pack: 1`` (the format's version).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from shared.contract import topics
from shared.streaming.batch import Incoming

PACK_HEADER = "crm.pack"
VERSION = b"1"
# Between the services only: what each of them reads, never what a channel system or an operator reads.
PACKED_TOPICS = (topics.CUSTOMER_EVENTS, topics.CUSTOMER_MERGED, topics.CUSTOMER_OWNERS, topics.LOYALTY_EVENTS,
                 topics.ALERTS_EVENTS, topics.CAMPAIGN_EVENTS)
# A pack stays far under the broker's default largest message (1 MB), and small enough that what a consumer
# prefetches stays bounded: faust keeps up to ``stream_buffer_maxsize`` messages (packs) per agent waiting, 64 MB
# at most with 1,024 of these. About 40 customer events: the per-message cost is amortised long before. A message
# larger than this goes out alone.
MAX_PACK_BYTES = 64 * 1024
MAX_PACK_MESSAGES = 1000

_HEAD = struct.Struct(">iH")
_HEADER = struct.Struct(">HI")
_LEN = struct.Struct(">I")


class PackError(ValueError):
    """A pack that cannot be read (truncated, or not a pack of this version)."""


def pack(messages: Sequence[tuple[bytes | None, Sequence[tuple[str, bytes]], bytes]]) -> bytes:
    """The value of a pack of ``(key, headers, value)`` messages."""
    out = bytearray()
    for key, headers, value in messages:
        out += _HEAD.pack(-1 if key is None else len(key), len(headers))
        if key is not None:
            out += key
        for name, raw in headers:
            encoded = name.encode()
            out += _HEADER.pack(len(encoded), len(raw))
            out += encoded
            out += raw
        out += _LEN.pack(len(value))
        out += value
    return bytes(out)


def unpack(data: bytes) -> list[tuple[bytes | None, list[tuple[str, bytes]], bytes]]:
    """The ``(key, headers, value)`` messages of a pack, in order; PackError when it cannot be read."""
    out = []
    at, end = 0, len(data)
    try:
        while at < end:
            key_len, n_headers = _HEAD.unpack_from(data, at)
            at += _HEAD.size
            key = None
            if key_len >= 0:
                key, at = data[at:at + key_len], at + key_len
            headers = []
            for _ in range(n_headers):
                name_len, raw_len = _HEADER.unpack_from(data, at)
                at += _HEADER.size
                name = data[at:at + name_len].decode()
                at += name_len
                headers.append((name, data[at:at + raw_len]))
                at += raw_len
            (value_len,) = _LEN.unpack_from(data, at)
            at += _LEN.size
            value = data[at:at + value_len]
            at += value_len
            if at > end or key_len < -1:
                raise PackError("the pack ends inside a message")
            out.append((key, headers, value))
    except (struct.error, UnicodeDecodeError) as exc:
        raise PackError(f"the pack cannot be read ({type(exc).__name__})") from None
    return out


def is_pack(headers: Iterable[tuple[str, bytes]] | None) -> bool:
    """Whether a message with these headers is a pack."""
    return any(name == PACK_HEADER for name, _ in headers or ())


def expand(value: bytes, topic: str, partition: int, offset: int, headers: list[tuple[str, bytes]],
           key: bytes | None, timestamp: float | None) -> list[Incoming]:
    """A consumed message as the messages it carries: itself, or each message of a pack (with the pack's topic,
    partition, offset and time). A pack that cannot be read is itself, marked with why (dead-lettered whole)."""
    if not is_pack(headers):
        return [Incoming(value, topic, partition, offset, headers, key, timestamp)]
    version = next(raw for name, raw in headers if name == PACK_HEADER)
    try:
        if version != VERSION:
            raise PackError(f"pack format {version[:8]!r} is not one this version reads")
        if not (messages := unpack(value)):
            raise PackError("the pack carries no message")
        return [Incoming(v, topic, partition, offset, h, k, timestamp) for k, h, v in messages]
    except PackError as exc:
        return [Incoming(value, topic, partition, offset, headers, key, timestamp, fault=str(exc))]


def carried(records: Iterable[Any]) -> list[Incoming]:
    """kafka-python's (or aiokafka's) consumer records as the messages they carry: what a reader of a topic the
    services pack sees (tests, benchmarks, tools)."""
    out: list[Incoming] = []
    for r in records:
        ts = r.timestamp / 1000 if getattr(r, "timestamp", None) else None
        out += expand(r.value or b"", r.topic, r.partition, r.offset, list(r.headers or []), r.key, ts)
    return out


def packed(messages: Sequence[Any], partition_of, *, max_bytes: int = MAX_PACK_BYTES,
           max_messages: int = MAX_PACK_MESSAGES) -> Iterator[tuple[int | None, list[Any]]]:
    """Messages (with ``topic``, ``key``, ``headers``, ``value``) grouped for sending: ``(None, [message])`` for
    one that goes out as itself, ``(partition, members)`` for a pack. ``partition_of(topic, key)`` is the
    partition the producer would choose for the message, or None (not a packed topic, unknown topic): then it
    goes out as itself, as does a keyless one and one larger than ``max_bytes``. Per partition the order is kept."""
    groups: dict[tuple[str, int], list[Any]] = {}
    for m in messages:
        p = partition_of(m.topic, m.key) if m.key is not None else None
        if p is None:
            yield None, [m]
        else:
            groups.setdefault((m.topic, p), []).append(m)
    for (_, p), members in groups.items():
        chunk: list[Any] = []
        size = 0
        for m in members:
            grows = _size(m)
            if chunk and (size + grows > max_bytes or len(chunk) >= max_messages):
                yield _chunk(chunk, p)
                chunk, size = [], 0
            if grows > max_bytes:
                yield None, [m]
                continue
            chunk.append(m)
            size += grows
        if chunk:
            yield _chunk(chunk, p)


def _size(m: Any) -> int:
    return len(m.value) + len(m.key or b"") + sum(len(n) + len(v) + _HEADER.size for n, v in m.headers) + 10


def _chunk(members: list[Any], partition: int) -> tuple[int | None, list[Any]]:
    return (None, members) if len(members) == 1 else (partition, members)
