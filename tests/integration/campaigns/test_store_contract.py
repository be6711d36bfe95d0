"""One contract for both store adapters: every operation campaigns relies on, with exact values."""

from __future__ import annotations

import time
from dataclasses import replace

from services.campaigns.domain.attribution import Enrolment, Refund, Sale
from services.campaigns.store import CampaignRow, MemberRow, TouchRow
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.base import OutboxMessage
from shared.storage.membership import Membership

DAY = 86_400_000


def purchase(sid: str, record: str, amount: int, ms: int, day: str, store_id: str | None = "SH-001",
             categories=("skincare",), order: str | None = None) -> PurchaseFact:
    return PurchaseFact("pos/SH-001", sid, record, order or sid, amount, store_id, ms, day, tuple(categories), ())


def campaign(cid: str, *, status: str = "draft", starts: str = "2026-03-10T00:00:00.000000Z",
             ends: str = "2026-03-20T00:00:00.000000Z", created: str = "2026-03-01T00:00:00.000000Z",
             key: str | None = None) -> CampaignRow:
    return CampaignRow(id=cid, definition={"name": f"name of {cid}", "nested": {"x": [1, "2"]}}, status=status,
                       created_at=created, updated_at=created, starts_at=starts, ends_at=ends, idempotency_key=key)


def member(cid: str, mid: str, group: str, at_ms: int = 1_000, **kw) -> MemberRow:
    return MemberRow(cid, mid, group, at_ms, 7 * DAY, 42, kw.get("tier"), kw.get("age_band", "25-34"),
                     kw.get("home_store"), kw.get("returning", True), purchases=kw.get("purchases", 3),
                     touches_before=kw.get("touches_before", 1))


def test_seen_events_and_facts_are_kept_once(store):
    with store.transaction():
        assert store.seen_first([("pos/SH-001", "e1"), ("pos/SH-001", "e2")]) == {("pos/SH-001", "e1"),
                                                                                ("pos/SH-001", "e2")}
        assert store.seen_first([("pos/SH-001", "e1"), ("web/shop", "e1")]) == {("web/shop", "e1")}
        assert store.seen_first([]) == set()
        store.add_purchases([purchase("p1", "r1", 100, 10, "2026-03-01")])
        store.add_purchases([purchase("p1", "r1", 999, 10, "2026-03-01")])  # a redelivery changes nothing
        store.add_refunds([RefundFact("pos/SH-001", "f1", "r1", "p1", 30, 20)] * 2)
        store.add_purchases([])
        store.apply_memberships([Membership("r1", "r1", "2026-03-01T00:00:00.000000Z")])
    sales, refunds = store.sales(["r1"])
    assert sales == [Sale("r1", "pos/SH-001", "p1", "p1", 100, 10, "2026-03-01")]
    assert refunds == [Refund("r1", "pos/SH-001", "f1", "p1", 30)]


def test_attributes_newest_wins_whatever_the_arrival_order(store):
    old = FieldValue("consent.sms", True, 1_000, "web/shop", "e1")
    new = FieldValue("consent.sms", False, 2_000, "web/shop", "e2")
    tie = FieldValue("consent.sms", True, 2_000, "web/shop", "e0")  # same time, sorts before e2: older
    city = FieldValue("city", "Shanghai", 1_000, "wechat/mini", "e3")
    with store.transaction():
        store.apply_memberships([Membership("r1", "r1", "t1"), Membership("r2", "r2", "t1")])
        store.put_attributes([("r1", [new, city]), ("r2", [old])])
        store.put_attributes([("r1", [old]), ("r1", [tie]), ("r2", [new])])
        store.put_attributes([])
    facts = {f.customer_id: f for f in store.customer_facts(as_of_ms=5_000)}
    assert dict(facts["r1"].attributes) == {"consent.sms": new, "city": city}
    assert dict(facts["r2"].attributes) == {"consent.sms": new}
    # Only the newest value is kept: as of a moment before it, the field is unknown.
    assert store.customer_facts(as_of_ms=1_500)[0].attributes == {"city": city}


def test_customer_facts_fold_records_and_follow_merges_and_unmerges(store):
    with store.transaction():
        store.apply_memberships([Membership("a", "a", "t1"), Membership("b", "b", "t1"), Membership("c", "c", "t1")])
        store.add_purchases([
            purchase("p1", "a", 10_000, 1 * DAY, "2026-03-01", "SH-001", ("skincare",)),
            purchase("p2", "a", 5_000, 2 * DAY, "2026-03-02", "SH-002", ("makeup",)),
            purchase("p3", "b", 2_000, 3 * DAY, "2026-03-02", "SH-002", ("makeup", "fragrance")),
            purchase("p4", "b", 7_000, 9 * DAY, "2026-03-09", "SH-002"),  # after the as-of
            purchase("p5", "b", 1_000, 3 * DAY, "2026-03-02", None, ())])
        store.add_refunds([RefundFact("pos/SH-001", "f1", "b", "p3", 500, 4 * DAY)])
        store.put_attributes([("b", [FieldValue("gender", "F", 1, "web/shop", "e1")])])
        store.put_tiers([("a", "gold", "0002"), ("a", "silver", "0001"), ("c", None, "0001")])
        store.put_tiers([("c", "gold", "0001")])  # the same version again changes nothing
        store.apply_memberships([Membership("b", "a", "t2")])  # b merged into a
    got = {f.customer_id: f for f in store.customer_facts(as_of_ms=5 * DAY)}
    assert set(got) == {"a", "c"}
    a = got["a"]
    assert (a.purchase_count, a.purchase_days, a.first_day, a.last_day) == (4, 2, "2026-03-01", "2026-03-02")
    assert (a.spend_minor, a.refund_minor, a.tier) == (18_000, 500, "gold")
    assert a.store_days == (("SH-001", 1, "2026-03-01"), ("SH-002", 1, "2026-03-02"))
    assert a.categories == frozenset({"skincare", "makeup", "fragrance"})
    assert a.attributes["gender"].value == "F"
    assert got["c"].purchase_count == 0 and got["c"].categories == frozenset() and got["c"].attributes == {}
    assert got["c"].tier is None  # the first tier of version 0001 stays
    narrow = {f.customer_id: f for f in store.customer_facts(as_of_ms=5 * DAY, fields={"city"}, categories=False)}
    assert narrow["a"].attributes == {} and narrow["a"].categories == frozenset()
    assert narrow["a"].purchase_count == 4  # only the optional parts are left out
    with store.transaction():
        assert store.apply_memberships([Membership("b", "b", "t3")]) == {"a", "b"}  # unmerged
    got = {f.customer_id: f for f in store.customer_facts(as_of_ms=5 * DAY)}
    assert (got["a"].purchase_count, got["a"].spend_minor, got["a"].refund_minor) == (2, 15_000, 0)
    assert (got["b"].purchase_count, got["b"].spend_minor, got["b"].refund_minor) == (2, 3_000, 500)
    assert store.current_customers(["a", "b", "never"]) == {"a": "a", "b": "b", "never": "never"}


def test_campaign_rows_round_trip_and_change_only_from_the_expected_status(store):
    with store.transaction():
        store.add_campaign(campaign("cmp_1", created="2026-03-01T00:00:00.000000Z", key="k1"))
        store.add_campaign(campaign("cmp_2", created="2026-03-02T00:00:00.000000Z", status="scheduled",
                                    starts="2026-03-05T00:00:00.000000Z"))
        store.add_campaign(campaign("cmp_3", created="2026-03-03T00:00:00.000000Z", status="running",
                                    ends="2026-03-06T00:00:00.000000Z"))
        # Paused before its launch, it has nothing to complete; paused after it, it completes at its end.
        store.add_campaign(campaign("cmp_4", created="2026-02-01T00:00:00.000000Z", status="paused",
                                    ends="2026-03-06T00:00:00.000000Z"))
        store.add_campaign(replace(campaign("cmp_5", created="2026-01-01T00:00:00.000000Z", status="paused",
                                            ends="2026-03-05T00:00:00.000000Z"),
                                   launched_at="2026-03-01T00:00:00.000000Z"))
    assert store.campaign("cmp_1") == campaign("cmp_1", key="k1")
    assert store.campaign("nope") is None and store.campaign_by_key("k1").id == "cmp_1"
    newest_first = ["cmp_3", "cmp_2", "cmp_1", "cmp_4", "cmp_5"]
    assert [c.id for c in store.campaigns(status=None, offset=0, limit=10)] == newest_first
    assert [c.id for c in store.campaigns(status=None, offset=1, limit=1)] == ["cmp_2"]
    assert store.campaign_count(status="running") == 1 and store.campaign_count(status=None) == 5
    assert store.due(now="2026-03-04T23:59:59.000000Z") == ([], [])
    assert store.due(now="2026-03-06T00:00:00.000000Z") == (["cmp_2"], ["cmp_5", "cmp_3"])
    with store.transaction():
        assert store.update_campaign("cmp_1", expect_status="scheduled", status="running") is False
        assert store.update_campaign("cmp_1", expect_status="draft", status="running", launch={"members": 3},
                                     launched_at="2026-03-10T00:00:00.000000Z") is True
    row = store.campaign("cmp_1")
    assert (row.status, row.launch, row.launched_at) == ("running", {"members": 3}, "2026-03-10T00:00:00.000000Z")
    assert store.campaign_names(["cmp_1", "cmp_3", "x"]) == {"cmp_1": "name of cmp_1", "cmp_3": "name of cmp_3"}


def test_members_touches_and_enrolments_follow_the_records(store):
    with store.transaction():
        store.apply_memberships([Membership(x, x, "t1") for x in ("a", "b", "c")])
        store.add_members([member("cmp_1", "a", "treatment"),
                           member("cmp_1", "b", "control", tier="gold", purchases=0, touches_before=0),
                           member("cmp_1", "c", "treatment"), member("cmp_2", "b", "treatment", at_ms=5_000)])
        store.add_members([member("cmp_1", "a", "control")])  # a re-sent member changes nothing
        store.add_touches([TouchRow("t1", "cmp_1", "a", "sms", 1_000), TouchRow("t2", "cmp_1", "c", "sms", 1_000),
                           TouchRow("t3", "cmp_2", "b", "sms", 5_000), TouchRow("t0", "cmp_0", "b", "sms", 100)])
        store.add_touches([TouchRow("t1", "cmp_1", "a", "sms", 1_000)])
        store.apply_memberships([Membership("b", "a", "t2")])  # b merged into a
    rows = store.members("cmp_1")
    assert [(m.member_id, m.customer_id, m.group) for m in rows] == [
        ("a", "a", "treatment"), ("b", "a", "control"), ("c", "c", "treatment")]
    assert rows[1] == replace(member("cmp_1", "b", "control", tier="gold", purchases=0, touches_before=0),
                              customer_id="a")
    assert [m.member_id for m in store.members("cmp_1", after="a", limit=1)] == ["b"]
    assert [m.member_id for m in store.members("cmp_1", group="treatment")] == ["a", "c"]
    assert (store.member_count("cmp_1"), store.member_count("cmp_1", group="control")) == (3, 1)
    assert (store.touch_count("cmp_1"), store.touch_count("cmp_2")) == (2, 1)
    # (since, until]: t0 at 100 is outside, t3 at 5,000 is on the edge and inside; b's touches count for a.
    assert store.touch_counts(since_ms=100, until_ms=5_000) == {"a": 2, "c": 1}
    assert sorted(store.enrolments(["a"]), key=lambda e: (e.campaign_id, e.member_id)) == [
        Enrolment("cmp_1", "a", "a", "treatment", 1_000, 7 * DAY),
        Enrolment("cmp_1", "b", "a", "control", 1_000, 7 * DAY),
        Enrolment("cmp_2", "b", "a", "treatment", 5_000, 7 * DAY)]
    assert store.enrolments(["b"]) == []


def test_sales_of_customers_in_a_time_range(store):
    with store.transaction():
        store.apply_memberships([Membership("a", "a", "t1"), Membership("b", "a", "t1"), Membership("c", "c", "t1")])
        for i, (rec, ms) in enumerate([("a", 100), ("b", 200), ("b", 300), ("c", 200)]):
            store.add_purchases([purchase(f"p{i}", rec, 1_000 + i, ms, "2026-03-01")])
        store.add_refunds([RefundFact("pos/SH-001", "f1", "b", "p1", 10, 900)])
    sales, refunds = store.sales(["a"], since_ms=200, until_ms=300)
    assert sales == [Sale("a", "pos/SH-001", "p1", "p1", 1_001, 200, "2026-03-01")]
    assert refunds == [Refund("a", "pos/SH-001", "f1", "p1", 10)]
    assert sorted(s.id for s in store.sales(["a", "c"])[0]) == ["p0", "p1", "p2", "p3"]


def test_view_versions_count_up_per_customer(store):
    with store.transaction():
        assert store.save_views({"a": "h1", "b": "h1"}) == {"a": 1, "b": 1}
        assert store.save_views({"a": "h2"}) == {"a": 2}
        # Never below the floor (the clock), and still one more than the last when that is higher.
        assert store.save_views({"a": "h3", "c": "h1"}, floor=1000) == {"a": 1000, "c": 1000}
        assert store.save_views({"a": "h4"}, floor=5) == {"a": 1001}
    assert store.view_hashes(["a", "b", "c"]) == {"a": "h4", "b": "h1", "c": "h1"}


def test_outbox_and_dead_letters_are_there(store):
    with store.transaction():
        queued = store.outbox_add([OutboxMessage("t", b"v", b"k"), OutboxMessage("t", b"w", b"k")])
    assert [m.seq is not None for m in queued] == [True, True]
    assert [m.value for m in store.outbox_pending()] == [b"v", b"w"]
    store.outbox_delete([queued[0].seq])
    assert [m.value for m in store.outbox_pending()] == [b"w"]


def test_leased_outbox_rows_are_not_the_sweepers_until_the_lease_ends(store):
    now = int(time.time() * 1000)
    with store.transaction():
        before = store.outbox_add([OutboxMessage("t", b"a", b"k")])
        launch = store.outbox_add([OutboxMessage("t", f"l{i}".encode(), b"k") for i in range(4)])
        lease = store.outbox_lease(launch, until_ms=now + 60_000)
        after = store.outbox_add([OutboxMessage("t", b"z", b"k")])
    assert store.outbox_lease([], until_ms=now + 60_000) is None
    assert [m.value for m in store.outbox_unleased()] == [b"a", b"z"]
    assert [m.seq for m in store.outbox_unleased()] == [before[0].seq, after[0].seq]
    assert [m.value for m in store.outbox_unleased(limit=1)] == [b"a"]
    assert store.outbox_unleased(older_than_s=3600) == []  # nothing is that old
    # The relay sends part of its rows; the rest stays its own while the lease lasts.
    store.outbox_delete([m.seq for m in launch[:2]])
    assert store.outbox_renew(lease, now_ms=now, until_ms=now + 120_000) is True
    assert [m.value for m in store.outbox_unleased()] == [b"a", b"z"]
    store.outbox_release(lease)
    assert [m.value for m in store.outbox_unleased()] == [b"a", b"l2", b"l3", b"z"]
    assert store.outbox_renew(lease, now_ms=now, until_ms=now + 120_000) is False  # released is gone


def test_a_lease_that_ran_out_hands_its_rows_to_the_sweeper_and_cannot_be_renewed(store):
    now = int(time.time() * 1000)
    with store.transaction():
        held = store.outbox_add([OutboxMessage("t", b"x", b"k"), OutboxMessage("t", b"y", b"k")])
        lease = store.outbox_lease(held, until_ms=now - 1)
        live = store.outbox_lease(store.outbox_add([OutboxMessage("t", b"w", b"k")]), until_ms=now + 60_000)
    assert [m.value for m in store.outbox_unleased()] == [b"x", b"y"]
    assert store.outbox_renew(lease, now_ms=now, until_ms=now + 60_000) is False
    assert store.outbox_renew(live, now_ms=now, until_ms=now + 60_000) is True


def test_a_store_file_from_before_the_history_columns_gains_them_and_keeps_its_members(tmp_path):
    import sqlite3

    from services.campaigns.store.sqlite import SqliteCampaignsStore

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE members (campaign_id TEXT NOT NULL, member_id TEXT NOT NULL, grp TEXT NOT NULL,"
                    " at_ms INTEGER NOT NULL, window_ms INTEGER NOT NULL, bucket INTEGER NOT NULL, tier TEXT,"
                    " age_band TEXT NOT NULL, home_store TEXT, repeat_buyer INTEGER NOT NULL,"
                    " PRIMARY KEY (campaign_id, member_id)) WITHOUT ROWID")
        old.execute("INSERT INTO members VALUES ('cmp_1', 'a', 'control', 1000, 5, 42, NULL, '<25', NULL, 1)")
    store = SqliteCampaignsStore(path)
    SqliteCampaignsStore(path).close()  # a second process opening the same file finds the columns there
    with store.transaction():
        store.add_members([member("cmp_1", "b", "treatment", purchases=2, touches_before=0)])
    assert [(m.member_id, m.purchases, m.touches_before) for m in store.members("cmp_1")] == [
        ("a", None, None), ("b", 2, 0)]


def test_period_sales_of_every_customer_net_of_the_refunds_of_those_orders(store):
    with store.transaction():
        store.apply_memberships([Membership("a", "a", "t1"), Membership("b", "a", "t1"), Membership("c", "c", "t1")])
        store.add_purchases([
            purchase("p1", "a", 1_000, 100, "2026-03-01", order="o1"),
            purchase("p2", "b", 500, 150, "2026-03-01", order="o2"),
            purchase("p3", "c", 700, 299, "2026-03-01", order="o3"),
            purchase("p4", "a", 900, 300, "2026-03-02", order="o4")])  # the period has ended
        store.add_refunds([
            RefundFact("pos/SH-001", "r1", "b", "o1", 300, 400),  # a's order, through its other record
            RefundFact("pos/SH-001", "r2", "c", "o3", 1_000, 400),  # more than the order: capped
            RefundFact("pos/SH-001", "r3", "a", "o4", 200, 400),  # of a purchase outside the period
            RefundFact("pos/SH-001", "r4", "c", "o1", 50, 400)])  # c has no order o1
    got = store.period_sales(since_ms=100, until_ms=300)
    assert (got.orders, got.gross_minor, got.refunded_minor, got.net_minor) == (3, 2_200, 1_000, 1_200)
    assert store.period_sales(since_ms=0, until_ms=100).orders == 0
    # Issue 16: the same per customer, of all or of some (kept results bring a few customers forward).
    assert store.period_sales_of(None, since_ms=100, until_ms=300) == {"a": (2, 1_500, 300), "c": (1, 700, 700)}
    assert store.period_sales_of(["c", "b", "z"], since_ms=100, until_ms=300) == {"c": (1, 700, 700)}
    assert store.period_sales_of(["a"], since_ms=100, until_ms=300) == {"a": (2, 1_500, 300)}
    assert store.period_sales_of([], since_ms=100, until_ms=300) == {}


def test_memberships_in_one_batch_end_as_one_at_a_time_whatever_their_order(store):
    rows = [Membership("r", "c1", "t2"), Membership("r", "c2", "t1"), Membership("r", "c3", "t3"),
            Membership("s", "c1", "t1"), Membership("s", "c1", "t1"), Membership("q", "c9", "t5")]
    with store.transaction():
        store.apply_memberships([Membership("q", "c8", "t4")])
        # r arrives three times (newest: c3), s twice, q moves from c8 to c9.
        assert store.apply_memberships(rows) == {"c1", "c3", "c8", "c9"}
        assert store.apply_memberships(list(reversed(rows))) == set()  # nothing newer: nothing changed
    assert store.current_customers(["r", "s", "q"]) == {"r": "c3", "s": "c1", "q": "c9"}


def test_customer_facts_of_some_customers_are_theirs_as_in_the_full_read_with_their_newest_fact_time(store):
    with store.transaction():
        store.apply_memberships([Membership("a", "a", "t1"), Membership("b", "b", "t1"), Membership("c", "c", "t1"),
                                 Membership("d", "d", "t1")])
        store.add_purchases([purchase("p1", "a", 10_000, 1 * DAY, "2026-03-01", "SH-001", ("skincare",)),
                             purchase("p2", "b", 2_000, 3 * DAY, "2026-03-02", "SH-002", ("makeup",)),
                             purchase("p3", "b", 7_000, 9 * DAY, "2026-03-09", "SH-002")])
        store.add_refunds([RefundFact("pos/SH-001", "f1", "a", "p1", 500, 4 * DAY)])
        store.put_attributes([("c", [FieldValue("gender", "F", 6 * DAY, "web/shop", "e1")]),
                              ("a", [FieldValue("city", "Shanghai", 2 * DAY, "web/shop", "e2")])])
        store.put_tiers([("b", "gold", "0001"), ("d", "silver", "0001")])
        store.apply_memberships([Membership("d", "b", "t2")])  # d merged into b
    full = {f.customer_id: f for f in store.customer_facts(as_of_ms=10 * DAY)}
    assert {c: f.newest_ms for c, f in full.items()} == {"a": 4 * DAY, "b": 9 * DAY, "c": 6 * DAY}
    some = store.customer_facts(as_of_ms=10 * DAY, customers=["b", "c", "d", "never"])
    assert some == [full["b"], full["c"]]  # d is b's now; an id with no records is no customer
    assert store.customer_facts(as_of_ms=5 * DAY, customers=["b"])[0].newest_ms == 3 * DAY  # as of a moment
    assert store.customer_facts(as_of_ms=10 * DAY, customers=[]) == []


def test_touch_times_follow_the_customers_as_they_are_now_as_touch_counts_do(store):
    with store.transaction():
        store.apply_memberships([Membership("a", "a", "t1"), Membership("b", "b", "t1"), Membership("c", "c", "t1")])
        store.add_touches([TouchRow("t1", "cmp_1", "a", "sms", 10), TouchRow("t2", "cmp_1", "b", "sms", 20),
                           TouchRow("t3", "cmp_2", "b", "sms", 30), TouchRow("t4", "cmp_2", "loose", "sms", 40)])
        store.apply_memberships([Membership("b", "a", "t2")])  # b merged into a
    assert sorted(store.touch_times()) == [("a", 10, "cmp_1"), ("a", 20, "cmp_1"), ("a", 30, "cmp_2"),
                                           ("loose", 40, "cmp_2")]
    assert sorted(store.touch_times(customers=["a", "loose", "c"])) == [("a", 10, "cmp_1"), ("a", 20, "cmp_1"),
                                                                        ("a", 30, "cmp_2"), ("loose", 40, "cmp_2")]
    assert store.touch_times(customers=["b"]) == []  # b's touches are a's now
    assert sorted(store.touch_times(campaigns=["cmp_2", "cmp_9"])) == [("a", 30, "cmp_2"), ("loose", 40, "cmp_2")]
    assert store.touch_times(campaigns=[]) == []
    assert store.touch_counts(since_ms=0, until_ms=100) == {"a": 3, "loose": 1}
    with store.transaction():
        store.apply_memberships([Membership("b", "b", "t3")])  # unmerged
    assert sorted(store.touch_times(customers=["b"])) == [("b", 20, "cmp_1"), ("b", 30, "cmp_2")]
    assert sorted(store.touch_times(campaigns=["cmp_1"])) == [("a", 10, "cmp_1"), ("b", 20, "cmp_1")]


def test_customer_ids_name_every_customer_of_the_whole_facts_read_so_it_can_be_read_in_chunks(store):
    with store.transaction():
        store.apply_memberships([Membership(r, r, "t1") for r in ("a", "b", "c", "d")])
        store.add_purchases([purchase("p1", "a", 10_000, 1 * DAY, "2026-03-01", "SH-001", ("skincare",)),
                             purchase("p2", "d", 2_000, 3 * DAY, "2026-03-02", "SH-002")])
        store.put_attributes([("c", [FieldValue("gender", "F", 6 * DAY, "web/shop", "e1")])])
        store.apply_memberships([Membership("d", "b", "t2")])  # d merged into b
    ids = store.customer_ids()
    assert set(ids) >= {"a", "b", "c"} and "d" not in ids
    whole = store.customer_facts(as_of_ms=10 * DAY)
    chunks = [f for i in range(0, len(ids), 2) for f in store.customer_facts(as_of_ms=10 * DAY,
                                                                              customers=ids[i:i + 2])]
    assert sorted(chunks, key=lambda f: f.customer_id) == whole


def test_a_record_passing_through_a_customer_within_one_call_leaves_that_customer_unchanged(store):
    with store.transaction():
        store.apply_memberships([Membership(x, x, "t1") for x in ("a", "b", "c")] + [Membership("r", "a", "t1")])
    with store.transaction():  # r moves to b, then (newer) to c, in one call: b's records end as they began
        assert store.apply_memberships([Membership("r", "b", "t2"), Membership("r", "c", "t3")]) == {"a", "c"}
    assert store.current_customers(["r"]) == {"r": "c"}
    assert store.records_of("b") == ["b"]
