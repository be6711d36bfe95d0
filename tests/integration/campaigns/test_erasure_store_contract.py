"""Issue 12: campaigns' ``erase_customer`` on every backend: profile fields, tier and view state go;
memberships of campaigns, touches and purchase facts stay under anonymous ids with the same record ->
customer shape, so member counts, touches and sales stay exact; the anonymous customer is in no
audience; nobody else's rows change."""

from __future__ import annotations

from services.campaigns.store import TouchRow
from shared.contract.facts import FieldValue
from shared.storage.membership import Membership
from tests.integration.campaigns.test_store_contract import member, purchase


def test_erase_customer_renames_what_results_count_and_deletes_the_rest(store):
    with store.transaction():
        store.apply_memberships([Membership("g", "g", "t1"), Membership("g2", "g", "t1"), Membership("k", "k", "t1")])
        store.add_members([member("cmp_1", "g", "treatment"), member("cmp_1", "g2", "control"),
                           member("cmp_1", "k", "treatment")])
        store.add_touches([TouchRow("t1", "cmp_1", "g", "sms", 1_000), TouchRow("t2", "cmp_1", "k", "sms", 1_000)])
        store.add_purchases([purchase("p1", "g", 500, 2_000, "2026-03-01"), purchase("p2", "g2", 700, 2_000,
                                                                                     "2026-03-01"),
                             purchase("p3", "k", 300, 2_000, "2026-03-01")])
        store.put_attributes([(r, [FieldValue("birthday", "1990-04-01", 1, "pos/S", f"e-{r}")])
                              for r in ("g", "g2", "k")])
        store.put_tiers([("g", "B", "0001"), ("k", "B", "0001")])
    counts = (store.member_count("cmp_1"), store.member_count("cmp_1", group="control"), store.touch_count("cmp_1"))
    total_sales = sorted(s.amount_minor for s in store.sales(["g", "k"])[0])
    with store.transaction():
        ids = store.erase_customer("g", records=["g"], erasure_id="er_1", anon="anon_1")
    assert ids == ["g", "g2"]
    assert (store.member_count("cmp_1"), store.member_count("cmp_1", group="control"),
            store.touch_count("cmp_1")) == counts == (3, 1, 2)
    members = {(m.member_id, m.customer_id, m.group) for m in store.members("cmp_1")}
    assert members == {("anon_1", "anon_1", "treatment"), ("anon_1.1", "anon_1", "control"), ("k", "k", "treatment")}
    assert sorted(s.amount_minor for s in store.sales(["anon_1", "k"])[0]) == total_sales == [300, 500, 700]
    assert store.sales(["g"])[0] == [] and store.enrolments(["g"]) == []
    facts = {f.customer_id: f for f in store.customer_facts(as_of_ms=10_000)}
    assert set(facts) == {"k"}  # the anonymous customer is in no audience
    assert facts["k"].attributes["birthday"].value == "1990-04-01" and facts["k"].tier == "B"
    assert store.erased_ids(["g", "g2", "k"]) == {"g", "g2"}
    # Again (a redelivered erasure): nothing more changes.
    with store.transaction():
        store.erase_customer("g", records=["g"], erasure_id="er_1", anon="anon_1")
    assert {(m.member_id, m.group) for m in store.members("cmp_1")} == {(a, g) for a, _, g in members}
