"""Issue 16, campaigns' log of changes on every backend: each write that customer facts, audiences or results
read bumps the generation in the same call and names the record and customer ids it touched; reads and writes
nobody keeps a reading of do not; the log reaches back a bounded number of generations."""

from __future__ import annotations

import pytest

from services.campaigns.domain.delivery import Receipt
from services.campaigns.store import CampaignRow, MemberRow, TouchRow
from services.campaigns.store.sqlite import SqliteCampaignsStore
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.changes import CHANGES_KEEP
from shared.storage.membership import Membership
from shared.storage.owners import OwnerRow


def _p(n: int, record: str) -> PurchaseFact:
    return PurchaseFact("pos/S01", f"p{n}", record, f"o{n}", 1000, "S01", 1_000 + n, "2026-01-05", ("shoes",))


def _member(campaign: str, member: str) -> MemberRow:
    return MemberRow(campaign, member, "treatment", 5_000, 86_400_000, 7, "gold", "30-39", "S01", False)


def _campaign() -> CampaignRow:
    return CampaignRow("cmp_1", {"name": "Spring"}, "draft", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z",
                       "2026-01-02T00:00:00Z", "2026-02-01T00:00:00Z")


def _logged(store, write) -> set[str] | None:
    """What one write, in its own transaction, logged (asserting it made exactly one generation)."""
    before = store.change_generation()
    with store.transaction():
        write()
    assert store.change_generation() == before + 1
    return store.changed_ids(after=before, upto=before + 1)


def _unlogged(store, write) -> bool:
    before = store.change_generation()
    with store.transaction():
        write()
    return store.change_generation() == before


def test_each_write_logs_the_ids_it_touched(store):
    assert store.change_generation() == 0
    assert _logged(store, lambda: store.add_purchases([_p(1, "c_a"), _p(2, "r_b")])) == {"c_a", "r_b"}
    assert _logged(store, lambda: store.add_refunds([RefundFact("pos/S01", "r1", "c_a", "o1", 300, 2_000)])
                   ) == {"c_a"}
    assert _logged(store, lambda: store.put_attributes(
        [("r_b", [FieldValue("consent.sms", True, 1_500, "web", "e1")]), ("c_c", [])])) == {"r_b"}
    assert _logged(store, lambda: store.put_tiers([("c_a", "gold", "v1")])) == {"c_a"}
    # A first mapping, then a merge of c_b (with its record r_b) into c_a, then the unmerge: each names the
    # records moved and the customers they left and joined.
    assert _logged(store, lambda: store.apply_memberships([Membership("r_b", "c_b", "2026-01-01T00:00:00.000001Z"),
                                                            Membership("c_b", "c_b", "2026-01-01T00:00:00.000001Z")])
                   ) == {"r_b", "c_b"}
    assert _logged(store, lambda: store.apply_memberships([Membership("r_b", "c_a", "2026-01-01T00:00:00.000002Z"),
                                                            Membership("c_b", "c_a", "2026-01-01T00:00:00.000002Z")])
                   ) == {"r_b", "c_b", "c_a"}
    assert _logged(store, lambda: store.apply_memberships([Membership("r_b", "c_b", "2026-01-01T00:00:00.000003Z")])
                   ) == {"r_b", "c_b", "c_a"}
    assert _logged(store, lambda: store.put_owners([OwnerRow("c_a", "S02", "2026-01-01T00:00:00.000004Z")])
                   ) == {"c_a"}
    assert _logged(store, lambda: store.add_members([_member("cmp_1", "c_a"), _member("cmp_1", "r_b")])
                   ) == {"c_a", "r_b"}
    touches = [TouchRow("t_1", "cmp_1", "c_a", "sms", 5_000), TouchRow("t_2", "cmp_1", "r_b", "sms", 5_000)]
    assert _logged(store, lambda: store.add_touches(touches)) == {"c_a", "r_b"}
    # A receipt names its touch's customer (and the touch: one whose touch is not held still counts somewhere).
    assert _logged(store, lambda: store.add_receipts([Receipt("web/sms", "e1", "t_2", "cmp_1", "delivered", None, 6)])
                   ) == {"r_b", "t_2"}


def test_an_erasure_logs_every_id_mapped_to_the_erased_the_customers_they_left_and_their_new_names(store):
    with store.transaction():
        store.apply_memberships([Membership("r_1", "c_x", "2026-01-01T00:00:00.000001Z"),
                                 Membership("c_x", "c_x", "2026-01-01T00:00:00.000001Z"),
                                 Membership("r_2", "c_y", "2026-01-01T00:00:00.000001Z")])
        store.add_purchases([_p(1, "r_1"), _p(2, "r_2")])
    # r_2 is erased with c_x though it still belongs to c_y here (identity's unmerge not come yet).
    logged = _logged(store, lambda: store.erase_customer("c_x", records=["r_2"], erasure_id="er1", anon="anon_1"))
    assert logged == {"c_x", "r_1", "r_2", "c_y", "anon_1", "anon_1.1", "anon_1.2"}


def test_repeats_and_reads_log_nothing(store):
    with store.transaction():
        store.add_touches([TouchRow("t_1", "cmp_1", "c_a", "sms", 5_000)])
        store.add_receipts([Receipt("web/sms", "e1", "t_1", "cmp_1", "delivered", None, 6)])
        store.apply_memberships([Membership("c_a", "c_a", "2026-01-01T00:00:00.000001Z")])
    assert _unlogged(store, lambda: store.add_touches([TouchRow("t_1", "cmp_1", "c_a", "sms", 5_000)]))
    assert _unlogged(store, lambda: store.add_receipts([Receipt("web/sms", "e1", "t_1", "cmp_1", "failed", None, 7)]))
    assert _unlogged(store, lambda: store.apply_memberships([Membership("c_a", "c_a", "2026-01-01T00:00:00.000001Z")]))
    for empty in (store.add_purchases, store.add_refunds, store.put_attributes, store.put_tiers, store.add_members,
                  store.add_touches, store.add_receipts, store.put_owners, store.apply_memberships):
        assert _unlogged(store, lambda empty=empty: empty([]))
    assert _unlogged(store, lambda: store.add_campaign(_campaign()))
    assert _unlogged(store, lambda: store.update_campaign("cmp_1", expect_status="draft", status="scheduled"))
    assert _unlogged(store, lambda: store.save_views({"c_a": "h1"}))
    assert _unlogged(store, lambda: store.customer_facts(as_of_ms=10_000))
    assert _unlogged(store, lambda: store.members("cmp_1"))


def test_the_log_reaches_back_a_bounded_number_of_generations(store):
    with store.transaction():
        store.add_purchases([_p(1, "c_a")])
        store.put_tiers([("c_z", "gold", "v0")])
    assert store.changed_ids(after=0, upto=2) == {"c_a", "c_z"}
    assert store.changed_ids(after=1, upto=2) == {"c_z"}
    assert store.changed_ids(after=2, upto=2) == set()
    for n in range(CHANGES_KEEP):
        with store.transaction():
            store.put_tiers([("c_z", "gold", f"v{n + 1:04d}")])
    now = store.change_generation()
    assert now == 2 + CHANGES_KEEP
    assert store.changed_ids(after=0, upto=now) is None  # too far back: a kept reading is computed afresh
    assert store.changed_ids(after=now - CHANGES_KEEP, upto=now) == {"c_z"}
    assert store.changed_ids(after=now - 3, upto=now) == {"c_z"}


def test_a_write_rolled_back_takes_its_generation_with_it(tmp_path):
    store = SqliteCampaignsStore(tmp_path / "c.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.add_purchases([_p(1, "c_a")])
        raise RuntimeError("the batch fails")
    assert store.change_generation() == 0
    assert store.changed_ids(after=0, upto=1) is None
    with store.transaction():
        store.add_purchases([_p(1, "c_a")])
    assert (store.change_generation(), store.changed_ids(after=0, upto=1)) == (1, {"c_a"})


def _preview_logged(store, write) -> tuple[set[str] | None, set[str] | None]:
    """What one write logged for the preview's index: (facts' ids, touched campaigns), None where not bumped."""
    facts, touches = store.facts_generation(), store.touches_generation()
    with store.transaction():
        write()
    assert store.facts_generation() - facts in (0, 1) and store.touches_generation() - touches in (0, 1)
    return (store.changed_facts(after=facts, upto=facts + 1) if store.facts_generation() > facts else None,
            store.touched_campaigns(after=touches, upto=touches + 1) if store.touches_generation() > touches
            else None)


def test_the_preview_logs_follow_only_facts_and_the_campaigns_touched(store):
    assert (store.facts_generation(), store.touches_generation()) == (0, 0)
    assert _preview_logged(store, lambda: store.add_purchases([_p(1, "c_a")])) == ({"c_a"}, None)
    assert _preview_logged(store, lambda: store.add_refunds([RefundFact("pos/S01", "r1", "c_a", "o1", 300, 2_000)])
                           ) == ({"c_a"}, None)
    assert _preview_logged(store, lambda: store.put_attributes(
        [("r_b", [FieldValue("consent.sms", True, 1_500, "web", "e1")])])) == ({"r_b"}, None)
    assert _preview_logged(store, lambda: store.put_tiers([("c_a", "gold", "v1")])) == ({"c_a"}, None)
    assert _preview_logged(store, lambda: store.apply_memberships(
        [Membership("r_b", "c_a", "2026-01-01T00:00:00.000001Z")])) == ({"r_b", "c_a"}, None)
    # Members, owners and receipts change no preview; touches name their campaigns only.
    assert _preview_logged(store, lambda: store.put_owners([OwnerRow("c_a", "S02", "2026-01-01T00:00:00.000002Z")])
                           ) == (None, None)
    assert _preview_logged(store, lambda: store.add_members([_member("cmp_1", "c_a")])) == (None, None)
    touches = [TouchRow("t_1", "cmp_1", "c_a", "sms", 5_000), TouchRow("t_2", "cmp_2", "r_b", "sms", 5_000)]
    assert _preview_logged(store, lambda: store.add_touches(touches)) == (None, {"cmp_1", "cmp_2"})
    assert _preview_logged(store, lambda: store.add_touches(touches)) == (None, None)  # held already
    assert _preview_logged(store, lambda: store.add_receipts(
        [Receipt("web/sms", "e1", "t_2", "cmp_2", "delivered", None, 6)])) == (None, None)
    assert _preview_logged(store, lambda: store.erase_customer("c_a", records=[], erasure_id="er1", anon="anon_1")
                           )[0] == store.changed_ids(after=store.change_generation() - 1,
                                                     upto=store.change_generation())
    # The general log (kept results) still names every write above.
    assert store.change_generation() == 10
