"""One contract for every loyalty store adapter (SQLite, mongomock, a real MongoDB when configured)."""

from __future__ import annotations

from decimal import Decimal

from services.loyalty.domain.model import Bonus, Entry, Line, Posted, Purchase, Refund
from services.loyalty.store import AccountRow, Announcement, IdempotencyRow, RedemptionRow, RewardRow
from shared.storage.membership import Membership
from tests.integration.loyalty.conftest import at


def _p(pid: str, record: str = "c_1", order: str | None = None, amount: int = 1000) -> Purchase:
    return Purchase("pos/S1", pid, record, order or pid, amount, at("2026-05-01 10:00"), "2026-05-01",
                    (Line("SK", "skincare", 2, 500),))


def _e(eid: str, record: str, bucket: str, rule: str, kind: str, points: int, posted: str) -> Entry:
    return Entry(eid, record, bucket, rule, kind, points, posted, posted, {"why": eid})


def test_facts_are_kept_once_and_read_back_exactly(store):
    with store.transaction():
        assert [p.id for p in store.add_purchases([_p("a"), _p("b", order="o-1"), _p("a")])] == ["a", "b"]
        assert store.add_purchases([_p("a")]) == []
        r = Refund("pos/S1", "r1", "c_2", "o-1", 300, at("2026-05-02 10:00"))
        assert store.add_refunds([r, r]) == [r]
        assert store.add_refunds([r]) == []
    assert sorted(p.id for p in store.purchases_of(["c_1"])) == ["a", "b"]
    assert store.purchases_of(["c_1"])[0].lines == (Line("SK", "skincare", 2, 500),)
    assert store.purchases_of(["c_1"])[0].time == at("2026-05-01 10:00")
    assert [p.id for p in store.purchases_for_orders(["o-1", "nope"])] == ["b"]
    assert store.refunds_for_orders(["o-1"]) == [r]
    assert store.purchases_for_orders([]) == [] and store.refunds_for_orders([]) == []


def test_bonus_keeps_the_newest_version_and_a_withdrawal_wins_a_tie(store):
    g = Bonus("g1", "camp", "c_1", Decimal("2"), at("2026-05-01 00:00"), at("2026-06-01 00:00"), True,
              at("2026-04-01 00:00"))
    with store.transaction():
        assert store.put_bonus(g) is True
        assert store.put_bonus(g) is False
        older = Bonus(**{**vars(g), "multiplier": Decimal("5"), "at": at("2026-03-01 00:00")})
        assert store.put_bonus(older) is False
        withdrawn = Bonus(**{**vars(g), "active": False})
        assert store.put_bonus(withdrawn) is True
    assert store.bonuses_of(["c_1"]) == [withdrawn]


def test_ledger_sums_buckets_pages_newest_first_and_dates_balances(store):
    rows = [_e("p:x|base|1", "c_1", "p:x", "base", "earn", 100, "2026-05-01T00:00:00.000000Z"),
            _e("p:x|base|2", "c_1", "p:x", "base", "earn", -10, "2026-05-03T00:00:00.000000Z"),
            _e("r:1|redemption|1", "c_1", "r:1", "redemption", "redeem", -50, "2026-05-02T00:00:00.000000Z"),
            _e("x:p:y|expiry|1", "c_2", "x:p:y", "expiry", "expire", -5, "2026-06-01T00:00:00.000000Z")]
    with store.transaction():
        store.add_entries(rows)
    assert store.posted(["c_1", "c_2"]) == {("p:x", "base"): Posted("c_1", 90, 2),
                                           ("x:p:y", "expiry"): Posted("c_2", -5, 1)}
    assert [m.entry_id for m in store.movements_of(["c_1"])] == ["r:1|redemption|1"]
    assert store.balance(["c_1", "c_2"]) == 35
    assert store.balance(["c_1"], before="2026-05-02T00:00:00.000000Z") == 100
    first = store.entries(["c_1", "c_2"], before=None, limit=2)
    assert [e.entry_id for e in first] == ["x:p:y|expiry|1", "p:x|base|2"]
    rest = store.entries(["c_1", "c_2"], before=(first[-1].posted_at, first[-1].entry_id), limit=5)
    assert [e.entry_id for e in rest] == ["r:1|redemption|1", "p:x|base|1"]
    assert rest[0].cause == {"why": "r:1|redemption|1"}
    may = store.entries_posted(["c_1"], start="2026-05-01T00:00:00.000000Z", end="2026-05-03T00:00:00.000000Z")
    assert [e.entry_id for e in may] == ["p:x|base|1", "r:1|redemption|1"]


def test_accounts_debits_due_list_and_announcements(store):
    with store.transaction():
        store.put_account(AccountRow("c_1", 100, 0, "B", {"points_balance": 100}, 3, 5000, "t"))
        store.put_account(AccountRow("c_2", 10, 0, None, {}, 1, 9000, "t"))
        store.put_account(AccountRow("c_3", 10, 0, None, {}, 1, None, "t"))
        assert store.debit_balance("c_1", 101) is False
        assert store.debit_balance("c_1", 100) is True
        store.add_announcements([Announcement("exp:c_1:x", "c_1", "x", 5, "t")])
        store.add_announcements([Announcement("exp:c_1:x", "c_1", "x", 5, "t")])
        store.add_announcements([Announcement("exp:c_1:x:9", "c_1", "x", 9, "t"),
                                 Announcement("exp:c_2:x", "c_2", "x", 7, "t")])
    assert store.account("c_1") == AccountRow("c_1", 0, 0, "B", {"points_balance": 100}, 3, 5000, "t")
    assert store.account("c_9") is None
    assert store.due_accounts(6000, limit=10) == ["c_1"]
    assert store.due_accounts(10_000, limit=10) == ["c_1", "c_2"]
    assert store.account_count() == 3
    assert store.announced("c_1", ["x", "y"]) == {"x": 9}
    assert store.announced("c_2", ["x"]) == {"x": 7} and store.announced("c_3", []) == {}
    # A batch's settles ask once for all their customers: each answer is what asking for that customer gives.
    asks = {"c_1": ["x", "y"], "c_2": ["x"], "c_3": [], "c_9": ["x"], "c_4": ["y"]}
    with store.transaction():
        store.add_announcements([Announcement("exp:c_4:y", "c_4", "y", 3, "t"),
                                 Announcement("exp:c_4:z", "c_4", "z", 4, "t")])
    assert store.announced_many(asks) == {"c_1": {"x": 9}, "c_2": {"x": 7}, "c_3": {}, "c_9": {}, "c_4": {"y": 3}}
    assert store.announced_many(asks) == {c: store.announced(c, moments) for c, moments in asks.items()}
    assert store.announced_many({}) == {}


def test_rewards_stock_redemptions_and_idempotency(store):
    reward = RewardRow("rw_1", "Mug", 100, 2, 1, None, None, True, "2026-01-01T00:00:00.000000Z")
    red = RedemptionRow("rd_1", "c_1", "c_1", "rw_1", 1, 100, "completed", "2026-05-01T00:00:00.000000Z", "key_a")
    with store.transaction():
        store.add_reward(reward)
        assert store.take_stock("rw_1", 2) is True
        assert store.take_stock("rw_1", 1) is False
        store.return_stock("rw_1", 1)
        assert store.update_reward("rw_1", changes={"name": "Big mug", "active": False}, add_stock=3) is True
        assert store.update_reward("rw_x", changes={}, add_stock=1) is False
        store.add_redemption(red)
        assert store.cancel_redemption("rd_1", at="t", by="key_b", reason="changed mind") is True
        assert store.cancel_redemption("rd_1", at="t", by="key_b", reason="again") is False
        store.put_idempotent(IdempotencyRow("redeem:c_1", "k1", "fp", 201, '{"a": 1}', "t"))
    got = store.reward("rw_1")
    assert (got.name, got.stock, got.redeemed, got.active) == ("Big mug", 4, 1, False)
    assert store.rewards(active_only=True, offset=0, limit=10) == []
    assert [r.reward_id for r in store.rewards(active_only=False, offset=0, limit=10)] == ["rw_1"]
    assert store.redemption("rd_1").status == "cancelled"
    assert store.redemption("rd_1").cancel_reason == "changed mind"
    assert store.redeemed_count(["c_1"], "rw_1") == 0
    assert [r.redemption_id for r in store.redemptions_of(["c_1"], offset=0, limit=5)] == ["rd_1"]
    assert store.idempotent("redeem:c_1", "k1") == IdempotencyRow("redeem:c_1", "k1", "fp", 201, '{"a": 1}', "t")
    assert store.idempotent("redeem:c_1", "k2") is None


def test_memberships_follow_the_newest_word_of_identity(store):
    with store.transaction():
        assert store.apply_memberships([Membership("c_b", "c_b", "2026-01-01T00:00:00Z")]) == {"c_b"}
        touched = store.apply_memberships([Membership("c_b", "c_a", "2026-01-02T00:00:00Z"),
                                           Membership("c_a", "c_a", "2026-01-02T00:00:00Z")])
        assert touched == {"c_a", "c_b"}
        assert store.apply_memberships([Membership("c_b", "c_b", "2026-01-01T12:00:00Z")]) == set()
    assert store.customer_of("c_b") == "c_a" and store.records_of("c_a") == ["c_a", "c_b"]
    assert store.known("c_b") and not store.known("c_zz")
