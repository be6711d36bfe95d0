"""Identity's store contract for the scope gaps of issue 12: the operations summary's customers counted
over the stores a scope covers, in the query, and the one-off backfill of older complaints' stores, on every
backend."""

from __future__ import annotations

import json

from services.identity.store import ConflictRow, EventRow
from shared.storage.owners import OwnerRow


def test_customer_count_owned_counts_the_active_customers_the_stores_own(store):
    with store.transaction():
        for rid in ("c_a", "c_a2", "c_a3", "c_b", "c_n", "c_u"):
            store.create_record(rid, phone=None, at="T1")
        # c_a3 is merged into c_a: no longer an active customer, whatever its owner row says.
        store.merge("c_a", "c_a3", merge_id="m1", cause={}, at="T2")
        store.put_owners([OwnerRow("c_a", "S01", "T1"), OwnerRow("c_a2", "S01", "T1"), OwnerRow("c_a3", "S01", "T1"),
                          OwnerRow("c_b", "S02", "T1"), OwnerRow("c_n", None, "T1")])  # c_u: never told
    assert store.customer_count() == 5
    assert store.customer_count_owned(frozenset({"S01"})) == 2
    assert store.customer_count_owned(frozenset({"S02"})) == 1
    assert store.customer_count_owned(frozenset({"S01", "S02"})) == 3
    assert store.customer_count_owned(frozenset({"S09"})) == 0
    assert store.customer_count_owned(frozenset()) == 0


def _complaint(eid: str, record: str, time_ms: int, store_id: str | None) -> EventRow:
    data = {"identity": {"phone": "13800000000"}, "text": "cold soup", **({"store_id": store_id} if store_id else {})}
    payload = json.dumps({"specversion": "1.0", "id": eid, "source": "wechat/oa", "type": "crm.complaint",
                          "data": data})
    return EventRow("wechat/oa", eid, record, "crm.complaint", "wechat", "T", time_ms, payload, "T")


def test_backfill_gives_complaints_kept_before_complaint_stores_their_store_once(store):
    # Complaints kept as a database from before complaint_stores holds them: events only, no complaint store rows.
    with store.transaction():
        for rid in ("c_a", "c_a2", "c_b", "c_n", "c_p"):
            store.create_record(rid, phone=None, at="T1")
        store.merge("c_a", "c_a2", merge_id="m1", cause={}, at="T2")
        store.add_events([_complaint("e1", "c_a", 100, "S01"), _complaint("e2", "c_a2", 300, "S03"),
                          _complaint("e3", "c_b", 200, "S02"), _complaint("e4", "c_b", 100, "S09"),
                          _complaint("e5", "c_n", 100, None),
                          EventRow("pos/S01", "p1", "c_p", "crm.purchase", "pos", "T", 100,
                                   json.dumps({"data": {"store_id": "S05"}}), "T")])
    assert store.complaint_stores_of(["c_a", "c_b", "c_n", "c_p"]) == {}
    with store.transaction():
        backfilled = store.backfill_complaint_stores(at="T3")
    # Merged-away c_a2's complaint counts for c_a (the latest of its records'); c_n named no store.
    assert backfilled == ["c_a", "c_b"]
    assert store.complaint_stores_of(["c_a", "c_b", "c_n", "c_p"]) == {"c_a": "S03", "c_b": "S02"}
    # Done once: a complaint kept since (with its complaint store row) is not read again, nothing is returned.
    with store.transaction():
        store.add_events([_complaint("e6", "c_n", 400, "S04")])
        assert store.backfill_complaint_stores(at="T4") == []
    assert store.complaint_stores_of(["c_n"]) == {}


def test_conflicts_owned_shows_a_decision_note_as_written_as_conflicts_does(store):
    # The note is staff free text, sealed at rest: a scoped list must open it like the company-wide one.
    with store.transaction():
        store.put_owners([OwnerRow("c_a", "S01", "T1"), OwnerRow("c_a2", "S01", "T1")])
        store.add_conflict(ConflictRow("x1", "would_merge_two_phone_customers", "wechat_openid", "ps",
                                       ("c_a", "c_a2"), "wechat/oa", "e-x1", "T1"))
        store.set_conflict_status("x1", status="dismissed", by="li.wei", note="two people")
    (every,) = store.conflicts(status=None, customer_id=None, offset=0, limit=10)
    (mine,) = store.conflicts_owned(frozenset({"S01"}), status=None, customer_id=None, offset=0, limit=10)
    assert every.note == mine.note == "two people"
    assert mine == every
