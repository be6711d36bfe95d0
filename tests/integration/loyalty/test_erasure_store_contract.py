"""Issue 12: loyalty's ``erase_customer`` on every backend: the erased customer's ledger and redemptions
stay under the anonymous id with their points (totals exact) and no reason text; facts, account,
schedule, announcements, memberships and idempotency answers go; nobody else's rows change."""

from __future__ import annotations

from services.loyalty.store import AccountRow, Announcement, IdempotencyRow, RedemptionRow
from shared.storage.membership import Membership
from tests.integration.loyalty.test_store_contract import _e, _p


def _seed(store) -> None:
    with store.transaction():
        store.apply_memberships([Membership("c_g", "c_g", "t1"), Membership("c_g2", "c_g", "t1"),
                                 Membership("c_k", "c_k", "t1")])
        store.add_purchases([_p("p1", "c_g"), _p("p2", "c_g2"), _p("p3", "c_k")])
        store.add_entries([_e("e1", "c_g", "b1", "earn", "earn", 100, "2026-05-01"),
                           _e("e2", "c_g2", "b2", "earn", "earn", 40, "2026-05-02"),
                           _e("e3", "c_g", "a:1", "manual", "adjust", -15, "2026-05-03"),
                           _e("e4", "c_k", "b3", "earn", "earn", 70, "2026-05-01")])
        for cid in ("c_g", "c_k"):
            store.put_account(AccountRow(cid, 10, 0, "B", {"points_balance": 10}, 1, 5000, "t"))
            store.put_checkpoint(cid, "state")
            store.add_announcements([Announcement(f"exp:{cid}", cid, "x", 5, "t")])
            store.add_redemption(RedemptionRow(f"rd_{cid}", cid, cid, "rw_1", 1, 20, "done", "t", "k-op"))
            store.put_idempotent(IdempotencyRow(f"redeem:{cid}", "key-1", "fp", 201, "{}", "t"))


def test_erase_customer_keeps_points_under_the_anonymous_id_and_deletes_the_rest(store):
    _seed(store)
    with store.transaction():
        ids = store.erase_customer("c_g", records=["c_g"], erasure_id="er_1", anon="anon_1")
    assert ids == ["c_g", "c_g2"]  # the records loyalty knew of, beyond those identity named
    for rid in ids:
        assert store.purchases_of([rid]) == [] and store.entries([rid], before=None, limit=10) == []
        assert store.account(rid) is None and store.checkpoint(rid) is None and store.announced(rid, ["x"]) == {}
        assert store.idempotent(f"redeem:{rid}", "key-1") is None
    assert store.records_of("c_g") == ["c_g"] and not store.known("c_g2")
    kept = store.entries(["anon_1"], before=None, limit=10)
    assert sorted((e.entry_id, e.points, e.cause) for e in kept) == [("e1", 100, {}), ("e2", 40, {}),
                                                                     ("e3", -15, {})]
    assert store.balance(["anon_1"]) == 125
    assert store.redemption("rd_c_g") == RedemptionRow("rd_c_g", "anon_1", "anon_1", "rw_1", 1, 20, "done", "t",
                                                       "k-op")
    assert store.erased_ids(["c_g", "c_g2", "c_k"]) == {"c_g", "c_g2"}
    # The other member: untouched.
    assert store.balance(["c_k"]) == 70 and store.account("c_k") is not None
    assert store.redemption("rd_c_k").customer_id == "c_k" and store.idempotent("redeem:c_k", "key-1") is not None
    # Again (a redelivered erasure): nothing more changes.
    with store.transaction():
        assert store.erase_customer("c_g", records=["c_g"], erasure_id="er_1", anon="anon_1") == ["c_g"]
    assert store.balance(["anon_1"]) == 125 and store.balance(["c_k"]) == 70
