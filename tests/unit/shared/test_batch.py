"""``process_batch``: every consumed message gets a decided fate, with an in-memory store whose
transactions roll back like a real one."""

from __future__ import annotations

import copy
import json
import sqlite3
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shared.contract.events import InvalidEvent
from shared.storage.base import OutboxMessage
from shared.streaming.batch import Incoming, dead_letter_for, process_batch

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


class FakeStore:
    """Rows, outbox and dead letters in memory; a failed outermost transaction restores the snapshot."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.outbox: list[OutboxMessage] = []
        self.letters: dict[str, object] = {}
        self.commits = 0
        self._depth = 0

    @contextmanager
    def transaction(self):
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        saved = copy.deepcopy((self.rows, self.outbox, self.letters))
        self._depth = 1
        try:
            yield
            self.commits += 1
        except BaseException:
            self.rows, self.outbox, self.letters = saved
            raise
        finally:
            self._depth = 0

    def outbox_add(self, messages: list[OutboxMessage]) -> list[OutboxMessage]:
        added = [replace(m, seq=len(self.outbox) + n + 1) for n, m in enumerate(messages)]
        self.outbox += added
        return added

    def dead_letter_add(self, letter) -> bool:
        if letter.fingerprint in self.letters:
            return False
        self.letters[letter.fingerprint] = letter
        return True


def decode(msg: Incoming) -> dict:
    try:
        item = json.loads(msg.value)
    except ValueError:
        raise InvalidEvent("invalid_json", ["value is not valid JSON"]) from None
    if "id" not in item:
        raise InvalidEvent("invalid_event", ["id: Field required"])
    return item


def apply(store: FakeStore):
    """Keep each item by id, announce it; ``fail`` makes an item fail as its own poison or transiently."""

    def run(items, outcome) -> list[OutboxMessage]:
        out = []
        for one in items:
            item = one.item
            if item.get("fail") == "poison":
                raise ValueError("this item cannot be applied")
            if item.get("fail") == "transient":
                raise sqlite3.OperationalError("database is locked")
            if item["id"] in store.rows:
                outcome.duplicates += 1
                continue
            store.rows[item["id"]] = item
            outcome.processed += 1
            out.append(OutboxMessage("t.crm.customer.events", json.dumps(item).encode(), item["id"].encode()))
        return out

    return run


def messages(*items, topic: str = "crm.channel.pos", partition: int = 1, headers=None) -> list[Incoming]:
    return [Incoming(i if isinstance(i, bytes) else json.dumps(i).encode(), topic, partition, 100 + n,
                     list(headers or []), f"key-{n}".encode()) for n, i in enumerate(items)]


def run(store: FakeStore, batch: list[Incoming], dec=decode):
    return process_batch(batch, store=store, service="svc", prefix="t.", clock=clock, decode=dec, apply=apply(store))


def test_a_good_batch_commits_once_and_announces_every_item():
    store = FakeStore()
    outcome = run(store, messages({"id": "a"}, {"id": "b"}, {"id": "a"}))
    assert (outcome.processed, outcome.duplicates, outcome.dead_lettered, store.commits) == (2, 1, 0, 1)
    assert [(m.key, m.seq) for m in outcome.outbox] == [(b"a", 1), (b"b", 2)]
    assert store.outbox == outcome.outbox and set(store.rows) == {"a", "b"}


def test_a_message_that_cannot_be_decoded_is_dead_lettered_unchanged_with_reason_and_origin():
    store = FakeStore()
    stale = [("crm.dlq.reason", b"an earlier failure"), ("traceparent", b"00-abc-def-01")]
    batch = messages({"id": "a"}, b"{not json", {"no": "id"}, headers=stale)
    outcome = run(store, batch)
    assert (outcome.processed, outcome.dead_lettered, store.commits) == (1, 2, 1)
    assert outcome.counts == {"dead_letter:invalid_json": 1, "dead_letter:invalid_event": 1}
    published = [m for m in outcome.outbox if m.topic == "t.crm.deadletter"]
    assert [(m.value, m.key) for m in published] == [(batch[1].value, b"key-1"), (batch[2].value, b"key-2")]
    letter = store.letters[dead_letter_for(batch[2], "x", "y", clock, service="svc").fingerprint]
    assert (letter.topic, letter.partition, letter.offset, letter.code, letter.reason, letter.value) == (
        "crm.channel.pos", 1, 102, "invalid_event", "id: Field required", batch[2].value)
    assert letter.headers == [
        ("traceparent", b"00-abc-def-01"), ("crm.dlq.code", b"invalid_event"),
        ("crm.dlq.reason", b"id: Field required"),
        ("crm.dlq.topic", b"crm.channel.pos"), ("crm.dlq.partition", b"1"), ("crm.dlq.offset", b"102"),
        ("crm.dlq.service", b"svc"), ("crm.dlq.at", b"2026-06-01T08:00:00.000000Z"),
    ]  # the stale reason of an earlier failure is replaced, not repeated


def test_the_same_poison_delivered_again_is_not_recorded_or_published_twice():
    store = FakeStore()
    run(store, messages(b"{not json"))
    again = run(store, messages({"id": "z"}, b"{not json"))  # redelivered at another offset
    assert (again.processed, again.dead_lettered) == (1, 0)
    assert [m.topic for m in again.outbox] == ["t.crm.customer.events"]
    assert len(store.letters) == 1


def test_a_message_that_fails_for_a_reason_of_its_own_is_dead_lettered_alone_and_the_rest_lands():
    store = FakeStore()
    batch = messages({"id": "a"}, {"id": "p", "fail": "poison"}, {"id": "b"}, b"[")
    outcome = run(store, batch)
    assert (outcome.processed, outcome.duplicates, outcome.dead_lettered) == (2, 0, 2)
    assert set(store.rows) == {"a", "b"}
    codes = sorted((letter.offset, letter.code, letter.reason) for letter in store.letters.values())
    assert codes == [(101, "processing_error", "processing failed: ValueError"),
                     (103, "invalid_json", "value is not valid JSON")]
    assert [m.topic for m in outcome.outbox] == ["t.crm.customer.events", "t.crm.customer.events",
                                                "t.crm.deadletter", "t.crm.deadletter"]
    assert store.outbox == outcome.outbox  # the failed first attempt left nothing behind


def test_a_transient_error_propagates_for_a_retry_and_leaves_nothing_behind():
    store = FakeStore()
    with pytest.raises(sqlite3.OperationalError):
        run(store, messages({"id": "a"}, {"id": "t", "fail": "transient"}, b"{"))
    assert (store.rows, store.outbox, store.letters) == ({}, [], {})
    with pytest.raises(sqlite3.OperationalError):  # also while isolating a poison message
        run(store, messages({"id": "p", "fail": "poison"}, {"id": "t", "fail": "transient"}))
    assert (store.rows, store.outbox, store.letters) == ({}, [], {})


def test_a_decoder_that_fails_unexpectedly_dead_letters_the_message_instead_of_raising():
    def fragile(msg: Incoming) -> dict:
        item = decode(msg)
        return {"id": item["id"], "n": 1 / item["n"]}

    store = FakeStore()
    outcome = run(store, messages({"id": "a", "n": 1}, {"id": "b", "n": 0}), dec=fragile)
    assert (outcome.processed, outcome.dead_lettered) == (1, 1)
    (letter,) = store.letters.values()
    assert (letter.offset, letter.code, letter.reason) == (101, "decode_error", "decoding failed: ZeroDivisionError")


def test_the_fingerprint_names_the_message_not_where_it_was_read():
    a, b = messages({"id": "a"}), messages({"id": "a"}, topic="crm.channel.pos", partition=3)
    first = dead_letter_for(a[0], "c", "r", clock, service="svc")
    assert first.fingerprint == dead_letter_for(b[0], "c", "r", clock, service="svc").fingerprint
    assert first.fingerprint != dead_letter_for(a[0], "c", "r", clock, service="other").fingerprint
    assert first.fingerprint != dead_letter_for(messages({"id": "a"}, topic="crm.channel.web")[0], "c", "r", clock,
                                                service="svc").fingerprint
