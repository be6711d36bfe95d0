"""Issue 14's store operations on every backend: tier overrides (kept, listed per record, lifted once while in
force) and adjustments awaiting approval (kept, listed by status and by the caller's stores, decided once),
their staff notes sealed at rest, and both gone with an erased customer."""

from __future__ import annotations

from dataclasses import replace

from services.loyalty.store import ApprovalRow, TierOverrideRow
from shared.storage.membership import Membership
from shared.storage.owners import OwnerRow
from tests.integration.loyalty.test_mask_notes_sealed import NOTE, _raw

T0, T1, T2, T3 = ("2026-11-01T04:00:00.000000Z", "2026-11-10T02:00:00.000000Z", "2026-12-31T16:00:00.000000Z",
                  "2027-01-05T00:00:00.000000Z")


def _override(oid: str, customer: str, starts: str = T0, ends: str = T2) -> TierOverrideRow:
    return TierOverrideRow(oid, customer, "A", "2026-12-31", starts, ends, NOTE, "k-op")


def _approval(aid: str, customer: str, at: str = T0, points: int = 1500) -> ApprovalRow:
    return ApprovalRow(aid, customer, points, NOTE, "k-op", at)


def test_overrides_are_listed_per_record_oldest_first_and_lifted_once_while_in_force(store):
    with store.transaction():
        store.add_tier_override(_override("ov_2", "c_o", starts=T1))
        store.add_tier_override(_override("ov_1", "c_o"))
        store.add_tier_override(_override("ov_3", "c_other"))
    assert store.tier_overrides_of(["c_o"]) == [_override("ov_1", "c_o"), _override("ov_2", "c_o", starts=T1)]
    assert [o.override_id for o in store.tier_overrides_of(["c_o", "c_other"])] == ["ov_1", "ov_3", "ov_2"]
    assert store.tier_overrides_of([]) == [] and store.tier_overrides_of(["c_none"]) == []
    with store.transaction():
        assert store.lift_tier_override("ov_1", at=T1, by="k-admin", reason="lifted: " + NOTE) is True
        assert store.lift_tier_override("ov_1", at=T1, by="k-admin", reason="again") is False  # lifted already
        assert store.lift_tier_override("ov_3", at=T3, by="k-admin", reason="late") is False  # ended by then
        assert store.lift_tier_override("ov_none", at=T1, by="k-admin", reason="none") is False
    assert store.tier_overrides_of(["c_o"])[0] == replace(_override("ov_1", "c_o"), lifted_at=T1,
                                                          lifted_by="k-admin", lift_reason="lifted: " + NOTE)
    assert store.tier_overrides_of(["c_other"])[0].lifted_at is None
    raw = _raw(store, "tier_overrides")
    assert "Wang Fang" not in raw and "1234_0001" not in raw


def test_approvals_are_listed_by_status_and_store_and_decided_once(store):
    with store.transaction():
        store.apply_memberships([Membership("c_s1", "c_s1", "t1"), Membership("c_s1b", "c_s1", "t1"),
                                 Membership("c_s2", "c_s2", "t1")])
        store.put_owners([OwnerRow("c_s1", "SH-001", "t1"), OwnerRow("c_s2", "SH-002", "t1")])
        store.add_approval(_approval("apr_b", "c_s2", at=T1))
        store.add_approval(_approval("apr_a", "c_s1"))
        store.add_approval(_approval("apr_c", "c_s1b", at=T2))  # asked through a record merged into c_s1
    assert store.approval("apr_a") == _approval("apr_a", "c_s1") and store.approval("apr_none") is None
    listed = store.approvals(status="pending", stores=None, offset=0, limit=10)
    assert [a.approval_id for a in listed] == ["apr_a", "apr_b", "apr_c"]
    assert [a.approval_id for a in store.approvals(status="pending", stores=frozenset({"SH-001"}), offset=0,
                                                   limit=10)] == ["apr_a", "apr_c"]
    assert store.approvals(status=None, stores=frozenset({"SH-009"}), offset=0, limit=10) == []
    assert [a.approval_id for a in store.approvals(status=None, stores=None, offset=1, limit=1)] == ["apr_b"]
    assert [a.approval_id for a in store.approvals(status=None, stores=None, offset=0, limit=10,
                                                   records=["c_s1", "c_s1b"])] == ["apr_a", "apr_c"]
    assert store.approvals(status=None, stores=frozenset({"SH-002"}), offset=0, limit=10, records=["c_s1"]) == []
    with store.transaction():
        assert store.decide_approval("apr_a", status="approved", by="k-admin", at=T1, reason="ok " + NOTE,
                                     adjustment_id="adj_1") is True
        assert store.decide_approval("apr_a", status="rejected", by="k-admin2", at=T2, reason="no",
                                     adjustment_id=None) is False
        assert store.decide_approval("apr_b", status="rejected", by="k-admin", at=T1, reason="no",
                                     adjustment_id=None) is True
    assert store.approval("apr_a") == replace(_approval("apr_a", "c_s1"), status="approved", decided_by="k-admin",
                                              decided_at=T1, decision_reason="ok " + NOTE, adjustment_id="adj_1")
    assert [a.approval_id for a in store.approvals(status="pending", stores=None, offset=0, limit=10)] == ["apr_c"]
    assert [a.approval_id for a in store.approvals(status="rejected", stores=None, offset=0, limit=10)] == ["apr_b"]
    raw = _raw(store, "approvals")
    assert "Wang Fang" not in raw and "1234_0001" not in raw


def test_an_erased_customer_takes_its_overrides_and_approvals_with_it(store):
    with store.transaction():
        store.apply_memberships([Membership("c_g", "c_g", "t1"), Membership("c_g2", "c_g", "t1")])
        store.add_tier_override(_override("ov_g", "c_g"))
        store.add_tier_override(_override("ov_k", "c_k"))
        store.add_approval(_approval("apr_g", "c_g2"))
        store.add_approval(_approval("apr_k", "c_k"))
    with store.transaction():
        store.erase_customer("c_g", records=["c_g"], erasure_id="er_1", anon="anon_1")
    assert store.tier_overrides_of(["c_g", "c_g2", "anon_1"]) == []
    assert store.approval("apr_g") is None
    assert [o.override_id for o in store.tier_overrides_of(["c_k"])] == ["ov_k"]
    assert store.approval("apr_k") is not None
