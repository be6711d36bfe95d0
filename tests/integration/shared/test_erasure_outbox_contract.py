"""Issue 12: what every service's store offers for an erasure through its outbox (``SqliteOutbox``,
``MongoOutbox``): pending messages and dead letters that name an erased customer are deleted, erased ids
are remembered, and on SQLite a deleted value leaves no copy in the file or its write-ahead log."""

from __future__ import annotations

from shared.storage.base import DeadLetter, OutboxMessage
from shared.storage.outbox import SqliteStore
from tests.integration.shared.backends import sqlite_file
from tests.integration.shared.test_outbox_contract import box  # noqa: F401 - the fixture, on every backend


def _letter(n: int, value: bytes) -> DeadLetter:
    return DeadLetter(f"fp-{n}", "crm.customer.events", 0, n, "invalid_message", "bad", value, [], "T1")


def test_forget_messages_deletes_what_names_the_customer_and_nothing_else(box):  # noqa: F811
    with box.transaction():
        box.outbox_add([
            OutboxMessage("t", b'{"customer_id":"c_gone","part":"loyalty"}', b"c_gone"),
            OutboxMessage("t", b'{"record_id":"c_gone2"}', b"c_other"),
            OutboxMessage("t", b'{"customer_id":"c_gone_not"}', b"c_gone_not"),
            OutboxMessage("t", b'{"customer_id":"c_kept"}', b"c_kept"),
        ])
        box.dead_letter_add(_letter(1, b'{"kind":"customer.event","customer_id":"c_gone","event":{}}'))
        box.dead_letter_add(_letter(2, b'{"kind":"customer.event","customer_id":"c_kept","event":{}}'))
    gone = box.forget_messages(keys=["c_gone", "c_gone2"], needles=['"c_gone"', '"c_gone2"'])
    assert gone == 3
    assert [m.value for m in box.outbox_pending()] == [b'{"customer_id":"c_gone_not"}', b'{"customer_id":"c_kept"}']
    assert [d.offset for d in box.dead_letters()] == [2]
    assert box.forget_messages(keys=[], needles=[]) == 0


def test_dead_letters_delete_deletes_exactly_those_ids(box):  # noqa: F811
    for n in range(3):
        box.dead_letter_add(_letter(n, f"value-{n}".encode()))
    ids = [d.id for d in box.dead_letters()]
    box.dead_letters_delete([ids[0], ids[2]])
    box.dead_letters_delete([])
    assert [d.offset for d in box.dead_letters()] == [1]


def test_erased_ids_are_remembered_once_and_answered_by_membership(box):  # noqa: F811
    assert box.erased_ids(["c_a", "c_b"]) == set()
    box.note_erased(["c_a", "c_a.1"], erasure_id="er_1")
    box.note_erased(["c_a"], erasure_id="er_2")  # again: changes nothing
    assert box.erased_ids(["c_a", "c_b", "c_a.1"]) == {"c_a", "c_a.1"}
    assert box.erased_ids([]) == set()
    box.scrub()  # nothing to report; must not fail on any backend


def test_on_sqlite_a_deleted_value_is_in_neither_the_file_nor_its_log_once_scrubbed(tmp_path):
    path = sqlite_file(tmp_path, "scrub")
    store = SqliteStore(path)
    secret = b"+8613512340001-erase-me"
    with store.transaction():
        store.outbox_add([OutboxMessage("t", b"x" * 3000 + secret, b"c_gone"),
                        OutboxMessage("t", b"y" * 100, b"c_kept")])
        store.dead_letter_add(_letter(1, b'{"customer_id":"c_gone","phone":"' + secret + b'"}'))
    assert store.forget_messages(keys=["c_gone"], needles=['"c_gone"']) == 2
    store.scrub()
    for file in (path, path.with_name(path.name + "-wal")):
        held = file.read_bytes() if file.exists() else b""
        assert secret not in held, file.name
    assert [m.key for m in store.outbox_pending()] == [b"c_kept"]
    store.db.close()
