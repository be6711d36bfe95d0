"""Issue 14: identity's staff-correction operations on every backend: an identifier a phone change replaced
leaves the lookup and stays readable in the history (counted per identifier), a record's phone is set,
assignments are kept one per customer and kind, and an erasure removes both (noting only whose a replaced
number was until its change)."""

from __future__ import annotations

from services.identity.domain.resolution import Found
from services.identity.store import AssignmentRow, ErasureRow, ReplacedIdentifierRow
from shared.storage.owners import OwnerRow

OLD, NEW = "+8613500000001", "+8613500000009"


def _phone_customer(store, rid: str, phone: str) -> None:
    with store.transaction():
        store.create_record(rid, phone=phone, at="T1")
        store.link(rid, [("phone", phone), ("wechat_openid", f"o-{rid}")], source="pos/S1", event_id=f"e-{rid}",
                   at="T1")


def test_a_replaced_identifier_is_found_no_more_and_kept_in_the_history(store):
    _phone_customer(store, "c_a", OLD)
    _phone_customer(store, "c_b", "+8613500000002")
    assert not store.has_replaced_identifiers()
    with store.transaction():
        assert store.replace_identifier(("phone", OLD), change_id="pc_1", by="key-1", at="T5")
        assert not store.replace_identifier(("phone", "+8613500000077"), change_id="pc_1", by="key-1", at="T5")
        store.link("c_a", [("phone", NEW)], source="staff/key-1", event_id="pc_1", at="T5")
        store.set_phone("c_a", phone=NEW, at="T5")
    assert store.has_replaced_identifiers()
    assert store.find([("phone", OLD), ("phone", NEW), ("wechat_openid", "o-c_a")]) == {
        ("phone", NEW): Found("c_a", "c_a", True), ("wechat_openid", "o-c_a"): Found("c_a", "c_a", True)}
    assert store.record("c_a").phone == NEW and store.record("c_a").updated_at == "T5"
    assert store.replaced_identifiers(["c_a", "c_b"]) == [
        ReplacedIdentifierRow("phone", OLD, "c_a", "T1", "pos/S1", "e-c_a", "T5", "key-1", "pc_1")]
    assert sorted((i.type, i.value, i.source) for i in store.identifiers(["c_a"])) == [
        ("phone", NEW, "staff/key-1"), ("wechat_openid", "o-c_a", "pos/S1")]
    assert store.replacements([("phone", OLD), ("phone", NEW)]) == {("phone", OLD): [("T5", "c_a")]}


def test_an_identifier_replaced_twice_counts_twice(store):
    _phone_customer(store, "c_a", OLD)
    with store.transaction():
        store.replace_identifier(("phone", OLD), change_id="pc_1", by="k", at="T2")
        store.link("c_a", [("phone", OLD)], source="staff/k", event_id="pc_2", at="T3")  # changed back
        store.replace_identifier(("phone", OLD), change_id="pc_3", by="k", at="T4")
    assert store.replacements([("phone", OLD)]) == {("phone", OLD): [("T2", "c_a"), ("T4", "c_a")]}
    assert [(r.change_id, r.source) for r in store.replaced_identifiers(["c_a"])] == [
        ("pc_1", "pos/S1"), ("pc_3", "staff/k")]


def test_assignments_are_one_per_customer_and_kind_replaced_and_removed(store):
    with store.transaction():
        store.put_assignment(AssignmentRow("c_a", "store", "S01", "k1", "T1"))
        store.put_assignment(AssignmentRow("c_a", "manager", "am-7", "k1", "T1"))
        store.put_assignment(AssignmentRow("c_b", "store", "S02", "k1", "T1"))
        store.put_assignment(AssignmentRow("c_a", "store", "S03", "k2", "T2"))
    assert store.assignments_of(["c_a", "c_b", "c_none"]) == {
        "c_a": {"store": AssignmentRow("c_a", "store", "S03", "k2", "T2"),
                "manager": AssignmentRow("c_a", "manager", "am-7", "k1", "T1")},
        "c_b": {"store": AssignmentRow("c_b", "store", "S02", "k1", "T1")}}
    with store.transaction():
        assert store.remove_assignment("c_a", kind="store")
        assert not store.remove_assignment("c_a", kind="store")
    assert store.assignments_of(["c_a"]) == {"c_a": {"manager": AssignmentRow("c_a", "manager", "am-7", "k1", "T1")}}


def test_an_erasure_removes_the_replaced_identifiers_and_assignments_of_its_records_only_noting_whose_they_were(
        store):
    _phone_customer(store, "c_gone", OLD)
    _phone_customer(store, "c_kept", "+8613500000002")
    with store.transaction():
        store.replace_identifier(("phone", OLD), change_id="pc_1", by="k", at="T2")
        store.replace_identifier(("phone", "+8613500000002"), change_id="pc_2", by="k", at="T2")
        for rid in ("c_gone", "c_kept"):
            store.put_assignment(AssignmentRow(rid, "manager", "am-1", "k", "T2"))
    row = ErasureRow("er_1", "c_gone", ("c_gone",), "asked", "k-admin", "T9", {})
    with store.transaction():
        store.erase(["c_gone"], erasure=row, pseudonyms=["p1"])
    assert store.replaced_identifiers(["c_gone"]) == []
    assert [r.change_id for r in store.replaced_identifiers(["c_kept"])] == ["pc_2"]
    # Whose the number was until its change is still noted (the number itself unreadable): the erased person's
    # events from before it are recognised, and the next holder's record is not named as an earlier one.
    assert store.replacements([("phone", OLD)]) == {("phone", OLD): [("T2", "c_gone")]}
    assert store.has_replaced_identifiers()
    assert list(store.assignments_of(["c_gone", "c_kept"])) == ["c_kept"]


def test_assigned_to_lists_active_customers_newest_first_within_the_stores_and_pages(store):
    with store.transaction():
        for rid in ("c_a", "c_b", "c_c", "c_d"):
            store.create_record(rid, phone=None, at="T1")
        store.put_owners([OwnerRow("c_a", "S01", "T1"), OwnerRow("c_b", "S02", "T1"), OwnerRow("c_c", "S01", "T1")])
        for rid, at in (("c_a", "T3"), ("c_b", "T4"), ("c_c", "T2"), ("c_d", "T5")):
            store.put_assignment(AssignmentRow(rid, "manager", "am-7", "k", at))
        store.put_assignment(AssignmentRow("c_a", "store", "am-7", "k", "T9"))  # another kind, same value
        store.merge("c_c", "c_d", merge_id="m1", cause={}, at="T6")

    def ids(rows):
        return [r.customer_id for r in rows]

    assert ids(store.assigned_to("manager", "am-7", stores=None, offset=0, limit=10)) == ["c_b", "c_a", "c_c"]
    assert ids(store.assigned_to("manager", "am-7", stores=None, offset=1, limit=1)) == ["c_a"]
    assert ids(store.assigned_to("manager", "am-7", stores=frozenset({"S01"}), offset=0, limit=10)) == ["c_a", "c_c"]
    assert ids(store.assigned_to("manager", "am-7", stores=frozenset(), offset=0, limit=10)) == []
    assert store.assigned_to("manager", "am-8", stores=None, offset=0, limit=10) == []
