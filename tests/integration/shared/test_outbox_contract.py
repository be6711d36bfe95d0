"""The outbox and dead-letter contract every service's store inherits (``SqliteOutbox``, ``MongoOutbox``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.storage.base import DeadLetter, OutboxMessage
from shared.storage.outbox import MongoStore, SqliteStore
from tests.integration.shared.backends import BACKENDS, TRANSACTIONAL, mongo_db, sqlite_file


def _open(kind: str, tmp_path) -> Iterator:
    if kind == "sqlite":
        box = SqliteStore(sqlite_file(tmp_path, "outbox"))
        yield box
        box.db.close()
        return
    with mongo_db(kind) as mdb:
        yield MongoStore(mdb)


@pytest.fixture(params=BACKENDS)
def box(request, tmp_path):
    yield from _open(request.param, tmp_path)


@pytest.fixture(params=TRANSACTIONAL)
def tx_box(request, tmp_path):
    yield from _open(request.param, tmp_path)


HEADERS = [("traceparent", b"00-abc-def-01"), ("raw", b"\xff\x00\x80")]


def _messages(n: int, start: int = 0) -> list[OutboxMessage]:
    return [OutboxMessage(f"topic-{i % 2}", f"value-{i}".encode() + b"\xfe", f"c_{i}".encode() if i % 3 else None,
                          HEADERS if i % 2 else []) for i in range(start, start + n)]


def _unsequenced(messages: list[OutboxMessage]) -> list[tuple]:
    return [(m.topic, m.value, m.key, m.headers) for m in messages]


def test_outbox_add_numbers_messages_in_order_and_pending_returns_them_oldest_first(box):
    assert box.outbox_add([]) == []
    with box.transaction():
        first = box.outbox_add(_messages(3))
    second = box.outbox_add(_messages(2, start=3))
    added = first + second
    seqs = [m.seq for m in added]
    assert all(s is not None for s in seqs) and seqs == sorted(set(seqs))
    assert _unsequenced(added) == _unsequenced(_messages(5))
    pending = box.outbox_pending()
    assert pending == added  # keys, bytes that are not UTF-8 and headers come back exactly
    assert box.outbox_pending(limit=2) == added[:2]
    assert box.outbox_pending(older_than_s=3600) == []  # the sweeper leaves fresh messages to their relay


def test_outbox_delete_forgets_exactly_the_messages_named(box):
    added = box.outbox_add(_messages(4))
    box.outbox_delete([added[1].seq, added[3].seq])
    box.outbox_delete([])
    assert box.outbox_pending() == [added[0], added[2]]
    box.outbox_delete([added[1].seq])  # again: nothing left to forget, nothing else touched
    assert box.outbox_pending() == [added[0], added[2]]


def test_a_batch_larger_than_one_statement_is_numbered_and_forgotten_exactly(box):
    # Issue 13: SQLite writes and deletes a batch's messages in a few multi-row statements; the numbers given
    # back must still be the rows' own, across statements, and a delete must name exactly its messages.
    box.outbox_add(_messages(1))
    with box.transaction():
        added = box.outbox_add(_messages(1000, start=1))
    pending = box.outbox_pending(limit=2000)
    assert pending[1:] == added
    box.outbox_delete([m.seq for m in pending if m.seq % 7])
    assert box.outbox_pending(limit=2000) == [m for m in pending if not m.seq % 7]


def test_outbox_messages_of_a_failed_transaction_are_never_published(tx_box):
    kept = tx_box.outbox_add(_messages(1))
    with pytest.raises(RuntimeError):
        with tx_box.transaction():
            tx_box.outbox_add(_messages(2, start=1))
            raise RuntimeError("the state change failed")
    assert tx_box.outbox_pending() == kept


def _letter(fp: str, *, offset: int = 7, reason: str = "data.amount: must be a decimal", code: str = "invalid_event"):
    return DeadLetter(fingerprint=fp, topic="crm.channel.pos", partition=2, offset=offset, code=code, reason=reason,
                      value=b'{"id": "x"}\xff', headers=[("crm.dlq.code", code.encode()), ("bin", b"\x00\xff")],
                      at=f"2026-01-0{offset % 9 + 1}T00:00:00.000000Z")


def test_a_dead_letter_is_recorded_once_per_fingerprint(box):
    assert box.dead_letter_add(_letter("fp-a")) is True
    assert box.dead_letter_add(_letter("fp-b", offset=8)) is True
    # The same message again (redelivered, or failed again after a redrive): counted once, newest reason kept.
    box.dead_letter_mark(1, status="redriven", at="2026-02-01T00:00:00.000000Z")
    assert box.dead_letter_add(_letter("fp-a", offset=99, reason="processing failed: ValueError",
                                       code="processing_error")) is False
    assert box.dead_letter_count() == 2
    again = box.dead_letter(1)
    assert again == DeadLetter("fp-a", "crm.channel.pos", 2, 7, "processing_error", "processing failed: ValueError",
                               b'{"id": "x"}\xff', [("crm.dlq.code", b"invalid_event"), ("bin", b"\x00\xff")],
                               "2026-01-08T00:00:00.000000Z", 1, "dead", "2026-02-01T00:00:00.000000Z")


def test_dead_letters_are_listed_oldest_first_by_status_and_counted(box):
    for n in range(5):
        box.dead_letter_add(_letter(f"fp-{n}", offset=n))
    box.dead_letter_mark(2, status="redriven", at="2026-03-01T00:00:00.000000Z")
    box.dead_letter_mark(4, status="redriven", at="2026-03-02T00:00:00.000000Z")
    assert [d.id for d in box.dead_letters()] == [1, 2, 3, 4, 5]
    assert [d.fingerprint for d in box.dead_letters()] == ["fp-0", "fp-1", "fp-2", "fp-3", "fp-4"]
    assert [d.id for d in box.dead_letters(status="dead")] == [1, 3, 5]
    assert [d.id for d in box.dead_letters(status="redriven", offset=1, limit=5)] == [4]
    assert [d.id for d in box.dead_letters(offset=1, limit=2)] == [2, 3]
    assert (box.dead_letter_count(), box.dead_letter_count(status="dead"),
            box.dead_letter_count(status="redriven")) == (5, 3, 2)
    marked = box.dead_letter(4)
    assert (marked.status, marked.redriven_at, marked.offset) == ("redriven", "2026-03-02T00:00:00.000000Z", 3)
    assert box.dead_letter(99) is None


@pytest.mark.parametrize("error, status, code", [("MessageSizeTooLargeError", 409, "cannot_redrive"),
                                                 ("KafkaTimeoutError", 503, "broker_unavailable")])
def test_a_redrive_the_broker_refuses_is_an_answer_not_a_crash_and_the_letter_stays_dead(box, error, status, code):
    import kafka.errors

    from shared.clock import system_clock
    from shared.http.deadletters import redrive
    from shared.http.errors import DomainError

    box.dead_letter_add(_letter("fp-r"))

    def publish(_messages):
        raise getattr(kafka.errors, error)()

    with pytest.raises(DomainError) as refused:
        redrive(1, store=box, publish=publish, clock=system_clock)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert box.dead_letter(1).status == "dead"
