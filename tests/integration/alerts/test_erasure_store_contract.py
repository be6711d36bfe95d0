"""Issue 12: alerts' ``erase_customer`` on every backend: every fact, profile field, free text, loyalty
state, alert and schedule entry of the customer's records goes; nobody else's."""

from __future__ import annotations

from services.alerts.store import AlertQuery, ExpiryRow, LoyaltyRow, OccurrenceRow
from shared.contract.facts import FieldValue
from shared.storage.membership import Membership
from tests.integration.alerts.test_store_contract import _alert, _purchase


def test_erase_customer_deletes_everything_of_its_records_and_nothing_else(store):
    with store.transaction():
        store.apply_memberships([Membership("c_g", "c_g", "t1"), Membership("c_g2", "c_g", "t1"),
                                 Membership("c_k", "c_k", "t1")])
        for n, rid in enumerate(("c_g", "c_g2", "c_k")):
            store.add_purchases([_purchase(n, rid, "2026-05-01")])
            store.add_occurrences([OccurrenceRow("complaint", f"o{n}", rid, 1, "SH-001", f"text of {rid}")])
            store.add_expiries([ExpiryRow(f"x{n}", rid, 5, 10)])
            store.put_attributes([(rid, [FieldValue("birthday", "1990-04-01", 1, "pos/S", f"e{n}")])])
            store.put_loyalty([LoyaltyRow(rid, "B", 10, "0001")])
        store.put_alerts([_alert("al_g", "c_g"), _alert("al_k", "c_k")])
        store.cover([("t_g", "al_g"), ("t_k", "al_k")])
    with store.transaction():
        ids = store.erase_customer("c_g", records=["c_g"], erasure_id="er_1", anon="anon_1")
    assert ids == ["c_g", "c_g2"]
    facts = store.facts(["c_g", "c_g2", "c_k"])
    for rid in ids:
        f = facts[rid]
        assert (f.purchases, f.complaints, f.expiries, f.birthday, f.tier, f.balance) == ((), (), (), None, None,
                                                                                          None), rid
    assert store.alert("al_g") is None
    assert [a.alert_id for a in store.find_alerts(AlertQuery(), offset=0, limit=10)[0]] == ["al_k"]
    assert store.erased_ids(["c_g", "c_g2", "c_k"]) == {"c_g", "c_g2"}
    kept = facts["c_k"]
    assert len(kept.purchases) == 1 and kept.complaints[0].value == "text of c_k" and str(kept.birthday) == "1990-04-01"
    assert (kept.tier, kept.balance) == ("B", 10)
    assert store.alert("al_k") is not None
