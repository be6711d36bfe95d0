"""Issue 13: a batch of channel events costs identity's store a few statements, not one per customer."""

from __future__ import annotations

from collections import Counter

from services.identity import messages
from tests.unit.identity.support import customer_of_phone, incoming, make_deps, purchase

PHONES = [f"+86138001380{n:02d}" for n in range(20)]


def _statements(deps) -> Counter:
    """The SQL statements the store's connection runs from now on, by their first words (an ``executemany``
    runs, and counts, once per row)."""
    seen: Counter = Counter()

    def note(sql: str) -> None:
        words = sql.upper().replace(" OR IGNORE", "").replace("(", " ").split()
        seen[" ".join(words[:3])] += 1

    deps.store.db.conn().set_trace_callback(note)
    return seen


def test_a_batch_writes_its_rows_in_one_statement_per_table_not_one_per_event(tmp_path):
    deps = make_deps(tmp_path / "identity.db")
    messages.consume(incoming([purchase(f"a{n}", {"phone": p}, "5.00") for n, p in enumerate(PHONES)]), deps=deps)
    created = {p: deps.store.record(customer_of_phone(p)) for p in PHONES}
    seen = _statements(deps)
    outcome = messages.consume(incoming([purchase(f"b{n}", {"phone": p}, "7.00") for n, p in enumerate(PHONES)],
                                        first_offset=20), deps=deps)
    assert (outcome.processed, outcome.dead_lettered) == (20, 0)
    # 20 rows each (20 customers touched, 20 messages to publish): the customers in one statement, each table's
    # rows in statements of a power of two of rows (16 and 4), whose few texts the connection keeps prepared.
    writes = ("UPDATE RECORDS SET", "INSERT INTO EVENTS", "INSERT INTO PURCHASES", "INSERT INTO OUTBOX")
    assert {k: seen[k] for k in writes} == {"UPDATE RECORDS SET": 1, "INSERT INTO EVENTS": 2,
                                            "INSERT INTO PURCHASES": 2, "INSERT INTO OUTBOX": 2}
    assert [m.topic for m in deps.store.outbox_pending()].count("crm.customer.events") == 40
    after = {p: deps.store.record(customer_of_phone(p)).updated_at for p in PHONES}
    # Every customer of the batch moved forward, to one moment: the batch's end.
    assert len(set(after.values())) == 1
    assert all(after[p] > created[p].updated_at for p in PHONES)


def test_view_parts_between_kinds_identity_ignores_are_held_in_one_write(tmp_path):
    # Issue 14: loyalty's topic carries tier changes and expiries between its parts; they no longer split a
    # batch's parts into a read and a write each.
    deps = make_deps(tmp_path / "identity.db")

    def part(customer: str, points: int, version: str) -> dict:
        return {"kind": "view.part", "customer_id": customer, "part": "loyalty",
                "value": {"points_balance": points}, "version": version}

    def expired(customer: str) -> dict:
        return {"kind": "loyalty.points_expired", "entry_id": f"x-{customer}", "customer_id": customer,
                "points": 1, "at": "2026-06-01T00:00:00Z"}

    seen = _statements(deps)
    outcome = messages.consume(incoming([
        part("c_x", 10, "2026-06-02T00:00:00Z-01"), expired("c_x"), part("c_y", 2, "2026-06-02T00:00:00Z-01"),
        expired("c_y"), part("c_x", 20, "2026-06-02T00:00:00Z-01"), expired("c_x"),
        part("c_x", 5, "2026-06-01T00:00:00Z-01"),
    ], topic="crm.loyalty.events"), deps=deps)
    assert (outcome.processed, outcome.counts["ignored"], outcome.dead_lettered) == (4, 3, 0)
    assert seen["INSERT INTO PARTS"] == 1
    assert deps.store.parts(["c_x"]) == {"loyalty": [{"points_balance": 20}]}
    assert deps.store.parts(["c_y"]) == {"loyalty": [{"points_balance": 2}]}
