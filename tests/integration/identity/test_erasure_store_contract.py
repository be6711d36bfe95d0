"""Issue 12: identity's erasure operations on every backend: ``erase`` removes every row of the
customer's records and nobody else's, keeps the erasure and the identifier pseudonyms; confirmations
are kept once per service."""

from __future__ import annotations

from services.identity.store import ComplaintStoreRow, ConflictRow, ErasureRow, EventRow
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact

SERVICES = {"identity": "T9", "loyalty": None, "alerts": None, "campaigns": None}


def _customer(store, rid: str, phone: str, *, merged: str | None = None) -> None:
    with store.transaction():
        store.create_record(rid, phone=phone, at="T1")
        store.link(rid, [("phone", phone), ("wechat_openid", f"o-{rid}")], source="pos/S1", event_id=f"e-{rid}",
                   at="T1")
        store.add_events([EventRow("pos/S1", f"e-{rid}", rid, "crm.purchase", "pos", "T1", 1, '{"data":{}}', "T1")])
        store.add_purchases([PurchaseFact("pos/S1", f"e-{rid}", rid, "O1", 1000, "S1", 1, "2026-01-01")])
        store.add_refunds([RefundFact("pos/S1", f"r-{rid}", rid, "O1", 100, 2)])
        store.add_complaint_stores([ComplaintStoreRow(rid, "S2", 3)])
        store.put_attributes([(rid, [FieldValue("name", f"Name {rid}", 1, "pos/S1", f"e-{rid}")])])
        store.put_part(rid, "loyalty", {"points_balance": 10}, version="1")
        if merged:
            store.create_record(merged, phone=None, at="T1")
            store.link(merged, [("member_id", f"M-{merged}")], source="web/x", event_id=f"e-{merged}", at="T1")
            store.merge(rid, merged, merge_id=f"m-{rid}", cause={"why": "test"}, at="T2")


def test_erase_removes_every_row_of_the_records_and_keeps_only_pseudonyms(store):
    _customer(store, "c_gone", "+8613500000001", merged="c_gone_w")
    _customer(store, "c_kept", "+8613500000002")
    with store.transaction():
        store.add_conflict(ConflictRow("x1", "phone_conflict", "phone", "p-x", ("c_gone", "c_kept"), "pos/S1", "e",
                                       "T3"))
    row = ErasureRow("er_1", "c_gone", ("c_gone", "c_gone_w"), "asked", "k-admin", "T9", SERVICES)
    assert not store.has_erasures()
    with store.transaction():
        store.erase(["c_gone", "c_gone_w"], erasure=row, pseudonyms=["p1", "p2"])
    for rid in ("c_gone", "c_gone_w"):
        assert store.record(rid) is None
        assert store.identifiers([rid]) == [] and store.attributes([rid]) == [] and store.parts([rid]) == {}
        assert store.timeline([rid], before=None, limit=10) == [] and store.merges([rid]) == []
        assert store.stats([rid]).purchase_count == 0 and store.stats([rid]).refund_minor == 0
        assert not store.event_seen("pos/S1", f"e-{rid}")
    assert store.find([("phone", "+8613500000001"), ("member_id", "M-c_gone_w")]) == {}
    assert store.conflicts(status=None, customer_id=None, offset=0, limit=10) == []
    # Everyone else as before.
    assert store.record("c_kept") is not None and len(store.identifiers(["c_kept"])) == 2
    assert store.stats(["c_kept"]).spend_minor == 1000 and store.parts(["c_kept"]) == {"loyalty": [
        {"points_balance": 10}]}
    assert store.customer_count() == 1
    assert store.has_erasures()
    assert store.erased(["p1", "p2", "p3", "p1"]) == {"p1", "p2"}
    assert store.erased([]) == set()
    assert store.erasure("er_1") == row
    assert store.erasure("er_nothing") is None
    # No complaint store is left behind: the same record ids held again have none (nor an owning store).
    with store.transaction():
        for rid in ("c_gone", "c_gone_w"):
            store.create_record(rid, phone=None, at="T10")
    assert store.complaint_stores_of(["c_gone", "c_gone_w", "c_kept"]) == {"c_kept": "S2"}


def test_an_erasure_is_kept_once_and_each_confirmation_keeps_its_first_time(store):
    row = ErasureRow("er_2", "c_x", ("c_x",), "asked", "k-admin", "T9", SERVICES)
    with store.transaction():
        store.erase([], erasure=row, pseudonyms=["p9"])
        store.erase([], erasure=ErasureRow("er_2", "c_y", (), "other", "k", "T10", {}), pseudonyms=["p9"])
    assert store.erasure("er_2") == row
    assert store.confirm_erasure("er_2", service="loyalty", at="T11")
    assert store.confirm_erasure("er_2", service="loyalty", at="T12")  # redelivered: the first time stays
    assert store.confirm_erasure("er_2", service="alerts", at="T13")
    assert not store.confirm_erasure("er_unknown", service="alerts", at="T13")
    assert store.erasure("er_2").confirmed == {"identity": "T9", "loyalty": "T11", "alerts": "T13", "campaigns": None}
