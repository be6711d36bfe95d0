"""The campaigns store contract for scoped access (issue 12): owners kept newest first, and a campaign's
members filtered by their customer's owning store inside the query (cursor and count), on every backend."""

from __future__ import annotations

from shared.storage.membership import Membership
from shared.storage.owners import OwnerRow
from tests.integration.campaigns.test_store_contract import member


def test_owners_keep_the_newest_per_customer(store):
    with store.transaction():
        store.put_owners([OwnerRow("c_a", "S01", "T2"), OwnerRow("c_a", "S03", "T1")])
    assert store.owners_of(["c_a", "c_z"]) == {"c_a": "S01", "c_z": None}


def test_members_owned_by_stores_page_by_cursor_and_count(store):
    with store.transaction():
        store.apply_memberships([Membership("a", "a", "T1"), Membership("r", "a", "T1"), Membership("b", "b", "T1")])
        store.put_owners([OwnerRow("a", "S01", "T1"), OwnerRow("b", "S02", "T1"), OwnerRow("n", "S01", "T1")])
        store.add_members([member("cmp_1", mid, "treatment" if mid in "ar" else "control")
                           for mid in ("a", "b", "n", "r", "x")])
    s01 = frozenset({"S01"})
    page = store.members("cmp_1", owned_by=s01, limit=2)
    assert [(m.member_id, m.customer_id) for m in page] == [("a", "a"), ("n", "n")]
    assert [m.member_id for m in store.members("cmp_1", owned_by=s01, after="n")] == ["r"]
    assert [m.member_id for m in store.members("cmp_1", owned_by=s01, group="treatment")] == ["a", "r"]
    assert store.member_count("cmp_1", owned_by=s01) == 3
    assert store.member_count("cmp_1", owned_by=s01, group="control") == 1
    assert store.member_count("cmp_1", owned_by=frozenset()) == 0 and store.member_count("cmp_1") == 5
