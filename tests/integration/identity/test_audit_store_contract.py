"""Identity's store contract, audit and retention part: the audit log (append-only, filtered, paged newest
first) and the purges retention runs, on every backend (SQLite, mongomock, a real MongoDB when set)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.identity.store import EventRow, IdentityStore
from shared.access.audit import AuditEntry, AuditQuery
from shared.storage.base import DeadLetter
from shared.storage.outbox import MongoStore, SqliteStore
from tests.integration.shared.backends import BACKENDS, mongo_db, sqlite_file


def _entry(n: int, *, actor: str = "ops-1", customer: str | None = "c_1", action: str = "loyalty.adjustment",
           at: str | None = None) -> AuditEntry:
    return AuditEntry(audit_id=f"au_{n:03d}", at=at or f"2026-06-01T08:00:{n:02d}.000000Z", service="loyalty",
                      actor=actor, role="operator", scope="store=SH-001", action=action, customer_id=customer,
                      target=f"adj_{n}", reason=None if n % 2 else "goodwill")


def _all(store: IdentityStore, query: AuditQuery = AuditQuery(), *, limit: int = 100) -> list[str]:
    return [e.audit_id for e in store.audit_find(query, after=None, limit=limit)]


def test_audit_entries_come_back_exactly_newest_first_and_a_second_delivery_changes_nothing(store):
    entries = [_entry(n) for n in range(1, 6)]
    store.audit_add(entries[:3])
    with store.transaction():
        store.audit_add(entries[2:])
    # The same audit_id again (a replay of the topic) with other contents: the first one stays.
    store.audit_add([AuditEntry(**{**entries[0].as_dict(), "actor": "someone-else", "reason": "changed"})])
    assert store.audit_find(AuditQuery(), after=None, limit=10) == list(reversed(entries))


def test_audit_filters_by_person_customer_action_and_time_and_pages_by_keyset(store):
    store.audit_add([
        _entry(1, actor="ops-1", customer="c_1", action="loyalty.adjustment"),
        _entry(2, actor="ops-2", customer="c_1", action="alerts.resolve"),
        _entry(3, actor="ops-1", customer="c_2", action="alerts.resolve"),
        _entry(4, actor="ops-1", customer=None, action="campaigns.launch"),
        # Two entries of one moment: the id breaks the tie, so paging never skips or repeats one.
        _entry(5, actor="ops-2", customer="c_2", action="reveal.customer", at="2026-06-01T08:00:09.000000Z"),
        _entry(6, actor="ops-2", customer="c_2", action="reveal.customer", at="2026-06-01T08:00:09.000000Z"),
    ])
    assert _all(store, AuditQuery(actor="ops-1")) == ["au_004", "au_003", "au_001"]
    assert _all(store, AuditQuery(customer_id="c_2")) == ["au_006", "au_005", "au_003"]
    assert _all(store, AuditQuery(action="alerts.resolve")) == ["au_003", "au_002"]
    assert _all(store, AuditQuery(since="2026-06-01T08:00:02.000000Z", until="2026-06-01T08:00:04.000000Z")) == [
        "au_003", "au_002"]  # since inclusive, until exclusive
    assert _all(store, AuditQuery(actor="ops-2", customer_id="c_2", action="reveal.customer")) == ["au_006", "au_005"]
    pages, after = [], None
    while True:
        page = store.audit_find(AuditQuery(), after=after, limit=2)
        pages.append([e.audit_id for e in page])
        if len(page) < 2:
            break
        after = (page[-1].at, page[-1].audit_id)
    assert pages == [["au_006", "au_005"], ["au_004", "au_003"], ["au_002", "au_001"], []]


def test_the_audit_log_has_no_operation_that_changes_an_entry_but_an_erasure_masking_names(store):
    # audit_scrub only rewrites reasons, and only an erasure calls it (review of issue 12, D4).
    assert [name for name in dir(store) if name.startswith("audit_")] == [
        "audit_add", "audit_find", "audit_purge", "audit_scrub"]


def test_audit_purge_deletes_entries_older_than_the_moment_and_keeps_that_moment(store):
    store.audit_add([_entry(1, at="2026-06-01T00:00:00.000000Z"), _entry(2, at="2026-06-01T00:00:00.000001Z"),
                     _entry(3, at="2026-05-31T23:59:59.999999Z")])
    assert store.audit_purge(before="2026-06-01T00:00:00.000000Z") == 1
    assert _all(store) == ["au_002", "au_001"]
    assert store.audit_purge(before="2026-06-01T00:00:00.000000Z") == 0


def _event(n: int, time_ms: int) -> EventRow:
    return EventRow("pos/SH-001", f"e{n}", "c_1", "crm.complaint", "pos", "2026-06-01T00:00:00.000000Z", time_ms,
                    '{"data": {"identity": {"phone": "+8613512340001"}, "text": "call 13512340001"}}',
                    "2026-06-01T00:00:00.000000Z")


def test_timeline_purge_drops_the_payloads_older_than_the_moment_and_keeps_the_events(store):
    with store.transaction():
        store.create_record("c_1", phone=None, at="2026-01-01T00:00:00.000000Z")
        store.add_events([_event(1, 999), _event(2, 1000), _event(3, 1001)])
    assert store.timeline_purge(before_ms=1000) == 1
    rows = {r.id: r.payload for r in store.timeline(["c_1"], before=None, limit=10)}
    assert rows == {"e3": _event(3, 1001).payload, "e2": _event(2, 1000).payload, "e1": "{}"}
    assert store.event_seen("pos/SH-001", "e1")  # still a known event: a replay of it stays a duplicate
    assert store.timeline_purge(before_ms=1000) == 0


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
    """The dead letters every service's store inherits, on each backend."""
    yield from _open(request.param, tmp_path)


def _letter(n: int, at: str) -> DeadLetter:
    return DeadLetter(f"fp-{n}", "crm.channel.pos", 0, n, "invalid_event", "bad", b"{}", [], at)


def test_dead_letter_purge_deletes_letters_older_than_the_moment_and_keeps_that_moment(box):
    for n, at in enumerate(["2026-05-31T23:59:59.999999Z", "2026-06-01T00:00:00.000000Z",
                            "2026-06-02T00:00:00.000000Z"]):
        box.dead_letter_add(_letter(n, at))
    assert box.dead_letter_purge(before="2026-06-01T00:00:00.000000Z") == 1
    assert [d.fingerprint for d in box.dead_letters()] == ["fp-1", "fp-2"]
    assert box.dead_letter_purge(before="2026-06-01T00:00:00.000000Z") == 0


def test_an_erasure_rewrites_the_reasons_of_entries_about_its_customers_and_no_others(store):
    # Review of issue 12, D4: the one change an entry undergoes, on every backend.
    # A conflict's entry names no customer, only the conflict (its target): au_010 acts on one of theirs.
    store.audit_add([_entry(2, customer="c_gone"), _entry(4, customer="c_gone_w"), _entry(6, customer="c_kept"),
                     _entry(8, customer=None), _entry(1, customer="c_gone"), _entry(10, customer=None)])
    with store.transaction():
        changed = store.audit_scrub(["c_gone", "c_gone_w"], scrub=lambda text: text.replace("good", "****"),
                                    targets=["adj_10"])
    assert changed == 3  # au_001 has no reason
    reasons = {e.audit_id: e.reason for e in store.audit_find(AuditQuery(), after=None, limit=10)}
    assert reasons == {"au_002": "****will", "au_004": "****will", "au_006": "goodwill", "au_008": "goodwill",
                       "au_001": None, "au_010": "****will"}
    assert store.audit_scrub([], scrub=str.upper, targets=[]) == 0
    assert store.audit_scrub([], scrub=lambda text: text.replace("will", "WILL"), targets=["adj_8"]) == 1
