"""The loyalty store contract for scoped access (issue 12): each customer's owning store, newest first."""

from __future__ import annotations

from shared.storage.owners import OwnerRow


def test_owners_keep_the_newest_per_customer(store):
    with store.transaction():
        store.put_owners([OwnerRow("c_a", "S01", "T2"), OwnerRow("c_b", "S02", "T1")])
        store.put_owners([OwnerRow("c_a", "S09", "T1"), OwnerRow("c_b", None, "T3")])
    assert store.owners_of(["c_a", "c_b", "c_z"]) == {"c_a": "S01", "c_b": None, "c_z": None}
