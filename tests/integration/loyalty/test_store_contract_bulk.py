"""Issue 13: a batch reads the history of every customer it settles at once; what it reads for each
customer must be exactly what that customer's own read gives, on every store adapter."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from services.loyalty.domain.model import Bonus, Entry, Line, Posted, Purchase, Refund
from services.loyalty.handlers.accounts import load_facts, load_histories
from services.loyalty.store import AccountRow
from shared.storage.membership import Membership
from tests.integration.loyalty.conftest import at

T0 = at("2026-03-01 10:00")


def _p(pid: str, record: str, *, order: str | None = None, days: int = 0) -> Purchase:
    return Purchase("pos/S1", pid, record, order or pid, 1000 + days, T0 + timedelta(days=days),
                    (T0 + timedelta(days=days)).date().isoformat(), (Line("SK", "skincare", 1, 1000 + days),))


def _history(store) -> dict[str, list[str]]:
    """Three customers: c_a holds c_b after a merge; c_c refunds an order id c_a bought under first."""
    with store.transaction():
        store.apply_memberships([Membership("c_b", "c_a", "2026-01-02T00:00:00Z"),
                                 Membership("c_a", "c_a", "2026-01-02T00:00:00Z"),
                                 Membership("c_c", "c_c", "2026-01-02T00:00:00Z")])
        store.add_purchases([_p("a1", "c_a", days=40), _p("a2", "c_a", days=2), _p("b1", "c_b", days=20),
                             _p("b2", "c_b", order="shared", days=5), _p("c1", "c_c", order="shared", days=9),
                             _p("c2", "c_c", days=50), _p("d1", "c_d", days=1)])
        store.add_refunds([Refund("pos/S1", "r1", "c_c", "shared", 300, T0 + timedelta(days=10)),
                           Refund("pos/S1", "r2", "c_a", "a1", 100, T0 + timedelta(days=41)),
                           Refund("pos/S1", "r3", "c_b", "a1", 50, T0 + timedelta(days=42))])
        store.put_bonus(Bonus("g1", "camp", "c_b", Decimal("2"), T0, T0 + timedelta(days=30), True, T0))
        store.put_bonus(Bonus("g2", "camp", "c_c", Decimal("3"), T0, T0 + timedelta(days=30), True, T0))
        store.add_entries([
            Entry("r:1|redemption|1", "c_b", "r:1", "redemption", "redeem", -50, "2026-03-02T00:00:00.000000Z",
                  "2026-03-02T00:00:00.000000Z", {"reward": "x"}),
            Entry("m:1|manual|1", "c_a", "m:1", "manual", "adjust", 20, "2026-04-02T00:00:00.000000Z",
                  "2026-04-02T00:00:00.000000Z", {"reason": "goodwill"}),
            Entry("p:pos/S1:a1|base|1", "c_a", "p:pos/S1:a1", "base", "earn", 10, "2026-04-10T00:00:00.000000Z",
                  "2026-04-10T00:00:00.000000Z", {})])
        store.put_account(AccountRow("c_a", 30, 0, "B", {"points_balance": 30}, 3, 5000, "t"))
        store.put_checkpoint("c_c", '{"at": "x"}')
    return {"c_a": ["c_a", "c_b"], "c_c": ["c_c"], "c_d": ["c_d"], "c_new": ["c_new"]}


def test_the_bulk_reads_give_each_customer_what_its_own_reads_give(store):
    records = _history(store)
    customers = list(records)
    assert store.records_of_many(customers) == {c: store.records_of(c) for c in customers} == records
    assert store.checkpoints_of(customers) == {"c_c": store.checkpoint("c_c")} == {"c_c": '{"at": "x"}'}
    assert store.accounts_of(customers) == {"c_a": store.account("c_a")}
    assert store.accounts_of(customers)["c_a"].view == {"points_balance": 30}
    sums = store.balances_of([r for c in customers for r in records[c]])
    assert {c: sum(sums.get(r, 0) for r in records[c]) for c in customers} == \
        {c: store.balance(records[c]) for c in customers} == {"c_a": -20, "c_c": 0, "c_d": 0, "c_new": 0}
    since = {"c_a": T0 + timedelta(days=5), "c_c": T0 + timedelta(days=5), "c_d": None, "c_new": None}
    for horizons in ({}, since):
        bulk = load_histories(store, records, horizons)
        assert bulk == {c: load_facts(store, records[c], since=horizons.get(c)) for c in customers}
    whole = load_histories(store, records, {})
    # The refund of c_a's order filed under c_b is c_a's; the shared order id is owned by c_b's purchase
    # (the earlier one), for c_c too.
    assert sorted(r.id for r in whole["c_a"].refunds) == ["r1", "r2", "r3"]
    assert whole["c_c"].order_owner == {"shared": "p:pos/S1:b2"}
    assert sorted(m.entry_id for m in whole["c_a"].movements) == ["m:1|manual|1", "r:1|redemption|1"]
    assert {"reason": "goodwill"} in [m.cause for m in whole["c_a"].movements]  # staff notes opened
    assert [p.id for p in load_histories(store, records, since)["c_a"].purchases] == \
        [p.id for p in load_facts(store, records["c_a"], since=since["c_a"]).purchases]
    assert sorted(p.id for p in load_histories(store, records, since)["c_a"].purchases) == ["a1", "b1", "b2"]
    assert load_histories(store, {}, {}) == {}


def test_the_bulk_reads_of_more_customers_than_one_query_binds(store):
    customers = [f"m{n:04d}" for n in range(1_300)]
    with store.transaction():
        store.add_purchases([_p(f"{c}-{k}", c, days=k) for c in customers for k in range(2)])
        store.add_refunds([Refund("pos/S1", f"r-{c}", c, f"{c}-1", 10, T0 + timedelta(days=3)) for c in customers])
        store.put_bonus(Bonus("g9", "camp", customers[-1], Decimal("2"), T0, T0 + timedelta(days=9), True, T0))
        for c in customers[::2]:
            store.put_checkpoint(c, f'{{"c": "{c}"}}')
            store.put_account(AccountRow(c, 1, 0, None, {}, 1, None, "t"))
    records = {c: [c] for c in customers}
    assert store.records_of_many(customers) == records
    assert store.checkpoints_of(customers) == {c: f'{{"c": "{c}"}}' for c in customers[::2]}
    assert set(store.accounts_of(customers)) == set(customers[::2])
    bulk = load_histories(store, records, {c: T0 + timedelta(hours=1) for c in customers[::3]})
    assert bulk == {c: load_facts(store, [c], since=T0 + timedelta(hours=1) if n % 3 == 0 else None)
                    for n, c in enumerate(customers)}
    assert [len(bulk[c].purchases) for c in customers[:3]] == [1, 2, 2]
    assert bulk[customers[-1]].bonuses[0].grant_id == "g9" and len(bulk[customers[4]].refunds) == 1


def test_a_batch_writes_its_accounts_and_checkpoints_in_one_call_each_replacing_the_ones_before(store):
    """Issue 13: a batch's settles write every account and checkpoint at once; what is read back is what one
    ``put_account`` / ``put_checkpoint`` per customer leaves."""
    with store.transaction():
        store.put_account(AccountRow("c_w1", 5, 0, "B", {"points_balance": 5}, 1, 100, "t0"))
        store.put_checkpoint("c_w1", '{"old": 1}')
        store.put_accounts([AccountRow("c_w1", 50, 2, None, {"points_balance": 50, "tier": None}, 2, None, "t1"),
                            AccountRow("c_w2", 7, 0, "A", {"points_balance": 7}, 1, 9000, "t1")])
        store.put_accounts([])
        store.put_checkpoints({"c_w1": '{"new": 1}', "c_w2": '{"new": 2}'})
        store.put_checkpoints({})
    assert store.accounts_of(["c_w1", "c_w2", "c_w3"]) == {
        "c_w1": AccountRow("c_w1", 50, 2, None, {"points_balance": 50, "tier": None}, 2, None, "t1"),
        "c_w2": AccountRow("c_w2", 7, 0, "A", {"points_balance": 7}, 1, 9000, "t1")}
    assert store.account("c_w1") == AccountRow("c_w1", 50, 2, None, {"points_balance": 50, "tier": None}, 2, None,
                                               "t1")
    assert store.checkpoints_of(["c_w1", "c_w2", "c_w3"]) == {"c_w1": '{"new": 1}', "c_w2": '{"new": 2}'}
    assert store.due_accounts(10_000, limit=10) == ["c_w2"]  # c_w1's due time went with its old snapshot
    assert store.account_count() == 2


def test_a_batch_of_facts_keeps_each_new_one_once_whatever_its_size_and_returns_the_first_of_each(store):
    """Issue 13: a batch's purchases and refunds go in a few statements; of a fact given twice (in one call, or
    far apart in a long one) the first is kept and returned, and one kept before is not new."""
    with store.transaction():
        assert store.add_purchases([_p("k0", "c_k")]) == [_p("k0", "c_k")]
        batch = [_p(f"k{i}", "c_k", days=i % 7) for i in range(260)]
        again = [_p("k5", "c_k", order="other", days=3), _p("k0", "c_k"), _p("k250", "c_k", order="late")]
        new = store.add_purchases(batch[:130] + again + batch[130:])
        # k0 was kept before, the second k5 is not new; the first k250 given is the one kept
        assert new == batch[1:130] + [again[2]] + [p for p in batch[130:] if p.id != "k250"]
        refunds = [Refund("pos/S1", f"q{i % 150}", "c_k", f"k{i}", i, T0 + timedelta(days=1)) for i in range(300)]
        assert store.add_refunds(refunds) == refunds[:150]
        assert store.add_refunds([]) == [] and store.add_purchases([]) == []
    kept = {p.id: p for p in store.purchases_of(["c_k"])}
    assert len(kept) == 260 and kept["k5"] == batch[5] and kept["k250"] == again[2]
    assert [r.amount_minor for r in store.refunds_for_orders(["k3", "k153"])] == [3]


def _entry(record: str, bucket: str, rule: str, points: int, n: int = 1, kind: str = "earn") -> Entry:
    return Entry(f"{bucket}|{rule}|{n}", record, bucket, rule, kind, points, "2026-04-10T00:00:00.000000Z",
                 "2026-04-10T00:00:00.000000Z", {})


def test_what_the_buckets_hold_is_read_for_a_batch_of_customers_as_for_each_alone(store):
    """Issue 13: a batch asks the ledger for every settled customer's buckets at once; each customer gets what
    its own ``posted`` gives (its records only, its buckets only, or all of them), however many ask."""
    with store.transaction():
        store.add_entries([_entry("c_pa", "p:1", "base", 10), _entry("c_pa", "p:1", "base", -3, 2),
                           _entry("c_pa", "p:1", "bonus", 4), _entry("c_pb", "p:2", "base", 7),
                           _entry("c_pb", "x:p:2", "expiry", -7, kind="expire"),
                           _entry("c_pb", "r:9", "redemption", -5, kind="redeem"),  # a movement: never derived
                           _entry("c_pc", "p:3", "base", 8), _entry("c_pc", "p:1", "base", 99, 5),
                           _entry("c_pd", "p:4", "base", 1)]
                          + [_entry(f"c_q{i:03d}", f"p:q{i}", "base", i) for i in range(800)])
    asks = {"A": (["c_pa", "c_pb"], ["p:1", "p:2", "x:p:2", "r:9", "nope"]),  # two records of one customer
            "C": (["c_pc"], None),  # every bucket
            "D": (["c_pd"], []),  # no bucket
            "E": (["c_none"], ["p:1"]),
            **{f"Q{i}": ([f"c_q{i:03d}"], [f"p:q{i}", f"p:q{i + 1}"]) for i in range(800)}}
    with store.transaction():
        many = store.posted_many(asks)
        assert many == {c: store.posted(records, buckets=buckets) for c, (records, buckets) in asks.items()}
    assert many["A"] == {("p:1", "base"): Posted("c_pa", 7, 2), ("p:1", "bonus"): Posted("c_pa", 4, 1),
                         ("p:2", "base"): Posted("c_pb", 7, 1), ("x:p:2", "expiry"): Posted("c_pb", -7, 1)}
    assert many["C"] == {("p:3", "base"): Posted("c_pc", 8, 1), ("p:1", "base"): Posted("c_pc", 99, 1)}
    assert many["D"] == {} and many["E"] == {} and many["Q7"] == {("p:q7", "base"): Posted("c_q007", 7, 1)}
    assert store.posted_many({}) == {}
