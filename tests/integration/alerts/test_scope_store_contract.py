"""The alerts store contract for scoped access (issue 12): owners kept newest first, and the alert list
filtered by the owning store of each alert's customer (through merges) inside the query, on every backend."""

from __future__ import annotations

from services.alerts.store import AlertQuery
from shared.storage.membership import Membership
from shared.storage.owners import OwnerRow
from tests.integration.alerts.test_store_contract import T0, _alert


def test_owners_keep_the_newest_per_customer(store):
    with store.transaction():
        store.put_owners([OwnerRow("c_a", "S01", "T2"), OwnerRow("c_a", "S03", "T1"), OwnerRow("c_b", "S02", "T1")])
        store.put_owners([OwnerRow("c_b", "S01", "T1")])  # as old as what is held: the later word wins
    assert store.owners_of(["c_a", "c_b", "c_z"]) == {"c_a": "S01", "c_b": "S01", "c_z": None}


def test_the_alert_list_keeps_only_alerts_of_customers_the_stores_own_and_pages_them(store):
    with store.transaction():
        # c_r is a record merged into c_a; c_n was never mapped (its own customer); c_x has no owner.
        store.apply_memberships([Membership("c_a", "c_a", "T1"), Membership("c_r", "c_a", "T1"),
                                 Membership("c_b", "c_b", "T1")])
        store.put_owners([OwnerRow("c_a", "S01", "T1"), OwnerRow("c_b", "S02", "T1"), OwnerRow("c_n", "S01", "T1")])
        store.put_alerts([_alert("al1", "c_a", opened_at=T0), _alert("al2", "c_r", opened_at=T0.replace(hour=5)),
                          _alert("al3", "c_b", opened_at=T0.replace(hour=6)),
                          _alert("al4", "c_n", opened_at=T0.replace(hour=7)),
                          _alert("al5", "c_x", opened_at=T0.replace(hour=8))])
    ids = lambda found: ([a.alert_id for a in found[0]], found[1])  # noqa: E731
    s01 = AlertQuery(owned_by=frozenset({"S01"}))
    assert ids(store.find_alerts(s01, offset=0, limit=2)) == (["al4", "al2"], 3)
    assert ids(store.find_alerts(s01, offset=2, limit=2)) == (["al1"], 3)
    assert ids(store.find_alerts(AlertQuery(owned_by=frozenset({"S01"}), customer_ids=("c_b",)),
                                 offset=0, limit=9)) == ([], 0)
    assert ids(store.find_alerts(AlertQuery(owned_by=frozenset()), offset=0, limit=9)) == ([], 0)
    assert ids(store.find_alerts(AlertQuery(), offset=0, limit=9))[1] == 5
