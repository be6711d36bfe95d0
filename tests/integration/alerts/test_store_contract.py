"""One contract for both alerts store adapters (SQLite, MongoDB via mongomock or a real server)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.alerts.domain.facts import Expiry, Occurrence, Purchase
from services.alerts.domain.workflow import Alert
from services.alerts.store import AlertQuery, Cover, ExpiryRow, LoyaltyRow, OccurrenceRow, sla_filter
from shared.churn import ChurnModel
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.membership import Membership

T0 = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def _purchase(n: int, record: str, day: str, store: str = "SH-001", amount: int = 10000) -> PurchaseFact:
    return PurchaseFact("pos/SH-001", f"p{n}", record, f"o{n}", amount, store, 0, day)


def _alert(alert_id: str, customer: str, type_: str = "complaint", **kw) -> Alert:
    base = dict(alert_id=alert_id, customer_id=customer, type=type_, severity="red", status="open", store_id="SH-001",
                manager=None, action="act", opened_at=T0, updated_at=T0, last_trigger_at=T0, origin_id=customer,
                detail={"n": 1})
    return Alert(**{**base, **kw})


def test_facts_gather_every_record_of_a_customer_and_follow_merges_and_unmerges(store):
    complaint = OccurrenceRow("complaint", "k1", "c_b", 1_700_000_000_000, "SH-002")
    with store.transaction():
        assert store.seen_events([("pos/SH-001", "e1"), ("pos/SH-001", "e2")]) == set()
        store.add_events([("pos/SH-001", "e1")])
        store.add_events([("pos/SH-001", "e1"), ("wechat/oa", "e1")])
        assert store.seen_events([("pos/SH-001", "e1"), ("pos/SH-001", "e2"), ("wechat/oa", "e1")]) == {
            ("pos/SH-001", "e1"), ("wechat/oa", "e1")}
        store.add_purchases([_purchase(1, "c_a", "2026-11-01"), _purchase(2, "c_b", "2026-11-03", "SH-002", 5000)])
        store.add_purchases([_purchase(1, "c_a", "2026-11-01")])  # the same event again adds nothing
        store.add_refunds([RefundFact("pos/SH-001", "r1", "c_a", "o1", 2500, 0)])
        assert store.add_occurrences([complaint, complaint]) == {"k1"}
        assert store.add_occurrences([complaint, OccurrenceRow("survey", "k2", "c_a", 1_700_000_000_000, None, 4)]) == {
            "k2"}
        assert store.add_expiries([ExpiryRow("x1", "c_b", 300, 1_800_000_000_000)]) == {"x1"}
        assert store.add_expiries([ExpiryRow("x1", "c_b", 300, 1_800_000_000_000)]) == set()
        touched = store.apply_memberships([Membership("c_b", "c_a", "2026-11-20T00:00:01.000000Z")])
    assert touched == {"c_a"}
    assert store.customer_of("c_b") == "c_a"
    assert store.customers_of(["c_b", "c_a", "c_new"]) == {"c_b": "c_a", "c_a": "c_a", "c_new": "c_new"}
    assert store.merged_away(["c_a", "c_b", "c_new"]) == {"c_b"}
    facts = store.facts(["c_a"])["c_a"]
    assert facts.purchases == (Purchase(date(2026, 11, 1), "SH-001", 10000),
                               Purchase(date(2026, 11, 3), "SH-002", 5000))
    assert facts.refund_minor == 2500 and facts.spend_minor() == 12500
    at = datetime.fromtimestamp(1_700_000_000, UTC)
    assert facts.complaints == (Occurrence("k1", at, "SH-002", None, "c_b"),)  # with the record it happened to
    assert facts.surveys == (Occurrence("k2", at, None, 4, "c_a"),)
    assert facts.expiries == (Expiry("x1", 300, datetime.fromtimestamp(1_800_000_000, UTC)),)
    with store.transaction():
        store.apply_memberships([Membership("c_b", "c_b", "2026-11-20T00:00:02.000000Z")])
    split = store.facts(["c_a", "c_b"])
    assert [p.day for p in split["c_a"].purchases] == [date(2026, 11, 1)]
    assert [p.day for p in split["c_b"].purchases] == [date(2026, 11, 3)]
    assert split["c_a"].complaints == () and len(split["c_b"].complaints) == 1


def test_newest_attribute_wins_whatever_the_order_and_the_own_loyalty_part_first(store):
    old = FieldValue("birthday", "1990-01-02", 1000, "wechat/oa", "e1")
    new = FieldValue("birthday", "1990-03-04", 2000, "pos/SH-001", "e2")
    b2 = LoyaltyRow("c_a", "B", 1200, "2026-11-20T01:00:00.000000Z-000002")
    with store.transaction():
        store.put_attributes([("c_a", [new]), ("c_a", [old])])
        store.put_attributes([("c_a", [old, FieldValue("attributes.account_manager", "am-7", 10, "pos/SH-001", "e3")])])
        # Of two parts of one record in a batch the newer is kept; an older one later changes nothing.
        assert store.put_loyalty([LoyaltyRow("c_a", "C", 900, "2026-11-20T01:00:00.000000Z-000001"), b2]) == [b2]
        assert store.put_loyalty([LoyaltyRow("c_a", "C", 900, "2026-11-20T01:00:00.000000Z-000001")]) == []
        assert store.put_loyalty([LoyaltyRow("c_m", "A", 99999, "2026-11-21T00:00:00.000000Z-000001")])[0].tier == "A"
        store.apply_memberships([Membership("c_m", "c_a", "2026-11-20T00:00:01.000000Z")])
    facts = store.facts(["c_a"])["c_a"]
    assert facts.birthday == date(1990, 3, 4)
    assert facts.account_manager == "am-7"
    # Loyalty republishes the survivor's part after a merge: the merged record's stale part does not count.
    assert (facts.tier, facts.balance) == ("B", 1200)


def test_alerts_are_found_filtered_paginated_and_counted(store):
    alerts = [
        _alert("al_1", "c_a", opened_at=T0),
        _alert("al_2", "c_a", "churn_red", opened_at=T0 + timedelta(minutes=1), store_id="SH-002"),
        _alert("al_3", "c_b", "birthday", severity="info", opened_at=T0 + timedelta(minutes=2), manager="am-7"),
        _alert("al_4", "c_b", "complaint", status="resolved", resolution="manual", resolved_at=T0 + timedelta(hours=1),
               resolved_by="key_x", note="called", opened_at=T0 - timedelta(days=1)),
    ]
    with store.transaction():
        store.put_alerts(alerts)
        store.cover([("t1", "al_1"), ("t2", "al_2"), ("t4", "al_4")])
    assert store.alert("al_4") == alerts[3]
    assert store.alert("nope") is None
    items, total = store.find_alerts(AlertQuery(), offset=0, limit=2)
    assert total == 4 and [a.alert_id for a in items] == ["al_3", "al_2"]
    items, total = store.find_alerts(AlertQuery(), offset=2, limit=2)
    assert [a.alert_id for a in items] == ["al_1", "al_4"]
    assert [a.alert_id for a in store.find_alerts(AlertQuery(status="open", customer_ids=("c_a", "c_z")), offset=0,
                                                  limit=10)[0]] == ["al_2", "al_1"]
    assert store.find_alerts(AlertQuery(store_id="SH-002"), offset=0, limit=10)[1] == 1
    assert store.find_alerts(AlertQuery(severity="info", manager="am-7"), offset=0, limit=10)[1] == 1
    assert store.find_alerts(AlertQuery(type="complaint", status="resolved"), offset=0, limit=10)[1] == 1
    # SLA as of 24 h 1 min after T0 (red: 24 h, info: 168 h): al_1 is late, al_2 due this very minute (not yet),
    # al_3 has a week, al_4 took 25 hours to resolve.
    hours = {"red": 24.0, "yellow": 72.0, "info": 168.0}
    now = T0 + timedelta(hours=24, minutes=1)
    for breached, want in ((True, ["al_1", "al_4"]), (False, ["al_2", "al_3"])):
        got, n = store.find_alerts(AlertQuery(sla=sla_filter(breached, hours=hours, now=now)), offset=0, limit=10)
        assert (sorted(a.alert_id for a in got), n) == (want, 2)
    late_open = AlertQuery(status="open", sla=sla_filter(True, hours=hours, now=now))
    assert [a.alert_id for a in store.find_alerts(late_open, offset=0, limit=10)[0]] == ["al_1"]
    assert store.find_alerts(AlertQuery(customer_ids=("c_b", "c_x")), offset=0, limit=10)[1] == 2
    assert sorted(a.alert_id for a in store.active_alerts(["c_a", "c_b"])) == ["al_1", "al_2", "al_3"]
    assert store.covered(["t1", "t2", "t3", "t4"]) == {
        "t1": Cover("al_1", "c_a", True), "t2": Cover("al_2", "c_a", True), "t4": Cover("al_4", "c_b", False)}
    with store.transaction():
        store.cover([("t1", "al_3")])  # taken over by another customer's alert (an unmerge gave its record back)
    assert store.covered(["t1"]) == {"t1": Cover("al_3", "c_b", True)}
    assert sorted(a.alert_id for a in store.alerts_from(["c_b"])) == ["al_3"]
    # The last resolution per type is a fact the rules read (a contact made, a new episode).
    assert store.facts(["c_a", "c_b"])["c_b"].last_resolved == {"complaint": T0 + timedelta(hours=1)}
    assert store.facts(["c_a"])["c_a"].last_resolved == {}


def test_due_index_versions_lease_and_models(store):
    with store.transaction():
        store.set_due({"c_a": 3000, "c_b": 1000, "c_c": None, "c_d": 2000})
        store.set_due({"c_d": 5000})
        assert store.next_versions(["c_a", "c_b"]) == {"c_a": 1, "c_b": 1}
        assert store.next_versions(["c_a"]) == {"c_a": 2}
        # Never below the floor (the clock), and still one more than the last when that is higher.
        assert store.next_versions(["c_a", "c_e"], floor=1000) == {"c_a": 1000, "c_e": 1000}
        assert store.next_versions(["c_a"], floor=5) == {"c_a": 1001}
    assert store.due_customers(until_ms=3000, limit=10) == ["c_b", "c_a"]
    assert store.due_customers(until_ms=3000, limit=1) == ["c_b"]
    assert store.due_count(until_ms=3000) == 2
    assert store.customers_after("", limit=10) == ["c_a", "c_b", "c_c", "c_d"]
    assert store.customers_after("c_b", limit=1) == ["c_c"]
    assert store.acquire_lease("scan", owner="w1", now_ms=1000, ttl_ms=500) is True
    assert store.acquire_lease("scan", owner="w2", now_ms=1200, ttl_ms=500) is False
    assert store.acquire_lease("scan", owner="w1", now_ms=1300, ttl_ms=500) is True  # renewed until 1800
    assert store.acquire_lease("scan", owner="w2", now_ms=1700, ttl_ms=500) is False
    assert store.acquire_lease("scan", owner="w2", now_ms=1900, ttl_ms=500) is True
    assert store.get_mark("scan.rules") is None
    with store.transaction():
        store.put_mark("scan.rules", "f1")
        store.put_mark("scan.rules", "f2")
    assert store.get_mark("scan.rules") == "f2"
    older = ChurnModel(0.2, 4.0, 0.7, 2.0, 10, 7, date(2026, 11, 1))
    newer = ChurnModel(0.3, 5.0, 0.8, 3.0, 12, 9, date(2026, 11, 2), penalizer=0.1)  # the penalty is kept too
    with store.transaction():
        store.put_model(newer, fitted_at="b")
        store.put_model(older, fitted_at="a")
    assert store.model(date(2026, 11, 1)).model == older
    assert store.model(date(2026, 11, 3)) is None
    assert store.latest_model(until=date(2026, 11, 5)).model == newer
    assert store.latest_model(until=date.max).model.penalizer == 0.1
    assert store.latest_model(until=date(2026, 11, 2)).fitted_at == "b"
    assert store.latest_model(until=date(2026, 11, 1)).model == older  # never one fitted after the day asked
    assert store.latest_model(until=date(2026, 10, 31)) is None


def test_purchase_days_are_distinct_per_customer_through_the_membership_mapping(store):
    with store.transaction():
        store.add_purchases([_purchase(1, "c_a", "2026-11-01"), _purchase(2, "c_a", "2026-11-01"),
                             _purchase(3, "c_b", "2026-11-02"), _purchase(4, "c_c", "2026-11-05"),
                             _purchase(5, "c_c", "2026-12-05")])
        store.apply_memberships([Membership("c_b", "c_a", "2026-11-20T00:00:01.000000Z")])
    got = {k: sorted(v) for k, v in store.purchase_days(until=date(2026, 11, 30)).items()}
    assert got == {"c_a": [date(2026, 11, 1), date(2026, 11, 2)], "c_c": [date(2026, 11, 5)]}
    one = store.purchase_days(until=date(2026, 12, 31), customer_id="c_a")
    assert {k: sorted(v) for k, v in one.items()} == {"c_a": [date(2026, 11, 1), date(2026, 11, 2)]}


def test_the_store_refuses_a_second_active_alert_of_one_type_for_a_customer(store):
    import sqlite3

    from pymongo.errors import PyMongoError

    first = _alert("al_1", "c_a")
    with store.transaction():
        store.put_alerts([first, _alert("al_2", "c_b"), _alert("al_3", "c_a", "survey_low")])
    with pytest.raises((sqlite3.IntegrityError, PyMongoError)), store.transaction():
        store.put_alerts([_alert("al_4", "c_a", status="acknowledged")])
    assert store.alert("al_4") is None
    # Once the first is resolved, a new episode may open; the same alert written again is an update.
    with store.transaction():
        store.put_alerts([_alert("al_1", "c_a", status="resolved", resolved_at=T0, resolution="manual"),
                          _alert("al_4", "c_a", repeats=1)])
        store.put_alerts([_alert("al_4", "c_a", repeats=2)])
    assert sorted((a.alert_id, a.repeats) for a in store.active_alerts(["c_a"])) == [("al_3", 0), ("al_4", 2)]


def test_an_sqlite_file_from_before_the_acknowledgement_note_is_upgraded_when_opened(tmp_path):
    import sqlite3

    from services.alerts.store.sqlite import SqliteAlertsStore
    from services.alerts.store.sqlite_schema import SCHEMA

    old = SCHEMA.replace(", acknowledged_note TEXT\n) WITHOUT ROWID;", "\n) WITHOUT ROWID;")
    assert old != SCHEMA
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as c:
        c.executescript(old)
    first, second = SqliteAlertsStore(path), SqliteAlertsStore(path)  # two workers opening the same file
    with first.transaction():
        first.put_alerts([_alert("al_1", "c_a", status="acknowledged", acknowledged_note="calling")])
    assert second.alert("al_1").acknowledged_note == "calling"


def test_occurrences_of_another_kind_come_back_under_their_kind(store):
    """A new event rule's occurrences need no store change: any kind is kept and read back by kind."""
    row = OccurrenceRow("product_return", "product_return|pos/SH-001|e1", "c_a", 1_700_000_000_000, "SH-001", 3)
    with store.transaction():
        assert store.add_occurrences([row, row]) == {row.key}
    facts = store.facts(["c_a"])["c_a"]
    assert facts.occurred("product_return") == (
        Occurrence(row.key, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), "SH-001", 3, "c_a"),)
    assert facts.complaints == () and facts.occurred("complaint") == ()
