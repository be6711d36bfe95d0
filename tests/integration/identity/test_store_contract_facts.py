"""Identity's store contract, part 2: events and the timeline, purchase and refund facts, statistics,
attributes, other services' view parts, ``touch`` and transactions, with hand-written expectations."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from services.identity.store import EventRow, StatsRow
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.base import OutboxMessage, is_transient


def _event(source: str, eid: str, record: str, ms: int, kind: str = "crm.page_view") -> EventRow:
    return EventRow(source, eid, record, kind, source.split("/")[0], f"time-{ms}", ms, f'{{"id":"{eid}"}}', "ING")


def test_an_event_is_seen_once_added_and_a_second_copy_is_refused(store):
    row = _event("pos/SH-001", "e1", "c_a", 1000)
    assert store.event_seen("pos/SH-001", "e1") is False
    with store.transaction():
        store.add_events([row])
    assert store.event_seen("pos/SH-001", "e1") is True
    assert store.event_seen("pos/SH-002", "e1") is False
    with pytest.raises(Exception) as refused:
        with store.transaction():
            store.add_events([replace(row, record_id="c_b", payload="{}")])
    # Not transient: retrying cannot help, the batch isolates the message instead.
    assert not is_transient(refused.value)
    assert store.timeline(["c_a"], before=None, limit=10) == [row]
    assert store.timeline(["c_b"], before=None, limit=10) == []


def test_a_batch_learns_which_of_its_events_were_processed_before_in_one_call(store):
    with store.transaction():
        store.add_events([_event("pos/SH-001", "e1", "c_a", 1000), _event("web/shop", "e1", "c_a", 1000),
                          _event("pos/SH-001", "e2", "c_b", 2000)])
    asked = [("pos/SH-001", "e1"), ("pos/SH-001", "e9"), ("web/shop", "e1"), ("web/shop", "e2"),
             ("wechat/oa", "e1"), ("pos/SH-001", "e2")]
    assert store.seen(asked) == {("pos/SH-001", "e1"), ("web/shop", "e1"), ("pos/SH-001", "e2")}
    assert store.seen([]) == set()
    # A pair asked twice, and more pairs than one statement takes, answer the same.
    many = asked + asked + [("web/shop", f"x{n}") for n in range(300)] + [("web/shop", "e1")]
    assert store.seen(many) == {("pos/SH-001", "e1"), ("web/shop", "e1"), ("pos/SH-001", "e2")}


def test_timeline_pages_newest_first_through_a_keyset_cursor(store):
    rows = [
        _event("pos/SH-001", "p1", "c_a", 5000),
        _event("web/shop", "w1", "c_a", 5000),
        _event("wechat/oa", "o1", "c_b", 5000),
        _event("pos/SH-001", "p0", "c_a", 5000),
        _event("pos/SH-001", "p2", "c_b", 7000),
        _event("web/shop", "w2", "c_a", 1000),
        _event("web/shop", "w3", "c_other", 6000),
    ]
    with store.transaction():
        store.add_events(rows)
    pages, before = [], None
    while True:
        page = store.timeline(["c_a", "c_b"], before=before, limit=2)
        if not page:
            break
        pages.append([r.id for r in page])
        before = (page[-1].time_ms, page[-1].source, page[-1].id)
    # Newest first; equal times by source, then id, both descending.
    assert pages == [["p2", "o1"], ["w1", "p1"], ["p0", "w2"]]
    assert store.timeline(["c_a"], before=(5000, "web/shop", "w1"), limit=10) == [rows[0], rows[3], rows[5]]
    assert store.timeline(["c_other"], before=None, limit=10) == [rows[6]]


def _purchase(eid: str, record: str, minor: int, store_id: str | None, ms: int, day: str) -> PurchaseFact:
    return PurchaseFact("pos/till-1", eid, record, f"o-{eid}", minor, store_id, ms, day)


def test_stats_are_exact_over_any_set_of_records_and_duplicates_count_once(store):
    with store.transaction():
        store.add_purchases([
            _purchase("p1", "c_a", 10_000, "SH-001", 3_000, "2026-03-01"),
            _purchase("p2", "c_a", 2_550, "SH-001", 2_000, "2026-03-01"),
            _purchase("p3", "c_a", 1, "SH-002", 9_000, "2026-03-02"),
        ])
        store.add_purchases([_purchase("p4", "c_a", 99_999, None, 1_000, "2026-03-05"),
                             _purchase("p5", "c_b", 700, "SH-002", 12_000, "2026-03-04")])
        store.add_purchases([_purchase("p1", "c_a", 55_555, "SH-009", 1, "2026-01-01")])  # duplicate (source, id)
        store.add_refunds([RefundFact("pos/SH-001", "r1", "c_a", "o-p1", 500, 4_000),
                           RefundFact("pos/SH-002", "r2", "c_b", "o-p5", 100, 13_000)])
        store.add_refunds([RefundFact("pos/SH-001", "r1", "c_a", "o-p1", 900, 4_000)])  # duplicate
    a = store.stats(["c_a"])
    assert replace(a, store_days=sorted(a.store_days)) == StatsRow(
        purchase_count=4, purchase_days=3, spend_minor=112_550, refund_minor=500, first_ms=1_000, last_ms=9_000,
        store_days=[("SH-001", 1, "2026-03-01"), ("SH-002", 1, "2026-03-02")],
    )
    both = store.stats(["c_a", "c_b"])
    assert replace(both, store_days=sorted(both.store_days)) == StatsRow(
        purchase_count=5, purchase_days=4, spend_minor=113_250, refund_minor=600, first_ms=1_000, last_ms=12_000,
        store_days=[("SH-001", 1, "2026-03-01"), ("SH-002", 2, "2026-03-04")],
    )
    assert store.stats(["c_nobody"]) == StatsRow()
    assert store.stats(["c_b"]).store_days == [("SH-002", 1, "2026-03-04")]


def _values(record_order: tuple[FieldValue, ...]):
    return sorted(record_order, key=lambda v: (v.field, v.time_ms, v.source, v.event_id))


NAME_VALUES = (
    FieldValue("name", "Li", 100, "wechat/oa", "e1"),
    FieldValue("name", "Wang", 200, "pos/SH-001", "e2"),
    FieldValue("name", "Zhang", 200, "web/shop", "e0"),  # same time: the later source wins
    FieldValue("name", "Zhao", 200, "web/shop", "e00"),  # same time and source: the later event id wins
)


def test_attributes_newest_wins_with_a_deterministic_tie_break_whatever_the_order(store):
    winners = []
    with store.transaction():
        for n, order in enumerate(itertools.permutations(NAME_VALUES)):
            for value in order:
                store.put_attributes([(f"c_{n:02d}", [value])])
    for n in range(24):
        winners.append(store.attributes([f"c_{n:02d}"]))
    assert winners == [[FieldValue("name", "Zhao", 200, "web/shop", "e00")]] * 24


def test_attributes_keep_json_values_and_their_source_per_field(store):
    first = [FieldValue("city", "Shanghai", 10, "web/shop", "e1"),
             FieldValue("consent.sms", True, 10, "web/shop", "e1"),
             FieldValue("attributes.tags", {"vip": [1, 2.5, None], "分店": "上海"}, 10, "web/shop", "e1")]
    second = [FieldValue("city", "Beijing", 5, "pos/SH-001", "e2"),
              FieldValue("consent.sms", False, 20, "pos/X", "e3"),
              FieldValue("birthday", "1990-05-01", 20, "pos/X", "e3")]
    with store.transaction():
        store.put_attributes([("c_a", first)])
        store.put_attributes([("c_a", second)])
        store.put_attributes([("c_a", [])])
        store.put_attributes([("c_b", [FieldValue("city", "Chengdu", 1, "pos/CD-001", "e4")])])
    assert _values(store.attributes(["c_a"])) == [
        FieldValue("attributes.tags", {"vip": [1, 2.5, None], "分店": "上海"}, 10, "web/shop", "e1"),
        FieldValue("birthday", "1990-05-01", 20, "pos/X", "e3"),
        FieldValue("city", "Shanghai", 10, "web/shop", "e1"),
        FieldValue("consent.sms", False, 20, "pos/X", "e3"),
    ]
    assert len(store.attributes(["c_a", "c_b"])) == 5
    assert store.attributes(["c_nobody"]) == []


def test_touch_only_moves_updated_at_forward(store):
    with store.transaction():
        store.create_record("c_a", phone=None, at="2026-01-02T00:00:00.000000Z")
        store.touch("c_a", at="2026-01-01T00:00:00.000000Z")
    assert store.record("c_a").updated_at == "2026-01-02T00:00:00.000000Z"
    with store.transaction():
        store.touch("c_a", at="2026-01-03T00:00:00.000000Z")
        store.touch("c_nobody", at="2026-01-03T00:00:00.000000Z")
    assert store.record("c_a").updated_at == "2026-01-03T00:00:00.000000Z"
    assert store.record("c_a").created_at == "2026-01-02T00:00:00.000000Z"
    assert store.record("c_nobody") is None


def test_touch_all_moves_each_customer_forward_in_one_write_as_touch_would(store):
    # Issue 13: a batch notes its changed customers in one statement, not one each.
    with store.transaction():
        store.create_record("c_a", phone=None, at="2026-01-02T00:00:00.000000Z")
        store.create_record("c_b", phone=None, at="2026-01-04T00:00:00.000000Z")
        store.touch_all(["c_a", "c_b", "c_nobody"], at="2026-01-03T00:00:00.000000Z")
        store.touch_all([], at="2026-01-09T00:00:00.000000Z")
    assert store.record("c_a").updated_at == "2026-01-03T00:00:00.000000Z"
    assert store.record("c_b").updated_at == "2026-01-04T00:00:00.000000Z"  # never moved back
    assert store.record("c_a").created_at == "2026-01-02T00:00:00.000000Z"
    assert store.record("c_nobody") is None


def test_put_parts_keeps_what_the_same_put_part_calls_in_turn_would(store):
    with store.transaction():
        store.put_parts([
            ("c_b", "loyalty", {"points_balance": 20, "tier": None}, "2026-01-02T00:00:00Z-0001"),
            ("c_a", "loyalty", {"points_balance": 10, "tier": "B"}, "2026-01-02T00:00:00Z-0002"),
            ("c_a", "alerts", {"open": [{"alert_id": "a1"}]}, "2026-01-01T00:00:00Z-0001"),
        ])
        store.put_parts([])
    with store.transaction():
        store.put_parts([
            ("c_a", "loyalty", {"points_balance": 1, "tier": "C"}, "2026-01-01T00:00:00Z-0009"),  # older: kept out
            ("c_a", "alerts", {"open": []}, "2026-01-01T00:00:00Z-0001"),  # same version: replaces
        ])
    assert store.parts(["c_b", "c_a"]) == {
        "loyalty": [{"points_balance": 10, "tier": "B"}, {"points_balance": 20, "tier": None}],
        "alerts": [{"open": []}],
    }
    # One customer's part several times in one call: each is weighed against the one before it, in turn.
    with store.transaction():
        store.put_parts([
            ("c_c", "loyalty", {"points_balance": 1}, "2026-01-02T00:00:00Z-0001"),
            ("c_c", "loyalty", {"points_balance": 2}, "2026-01-01T00:00:00Z-0001"),
            ("c_c", "loyalty", {"points_balance": 3}, "2026-01-02T00:00:00Z-0001"),
        ] + [(f"c_{n:04d}", "campaigns", {"n": n}, "2026-01-01T00:00:00Z-0001") for n in range(700)])
    assert store.parts(["c_c"]) == {"loyalty": [{"points_balance": 3}]}
    assert store.parts(["c_0000", "c_0699"]) == {"campaigns": [{"n": 0}, {"n": 699}]}


def test_view_parts_keep_the_highest_version_per_customer_and_part(store):
    with store.transaction():
        store.put_part("c_b", "loyalty", {"points_balance": 20, "tier": None}, version="2026-01-02T00:00:00Z-0001")
        store.put_part("c_a", "loyalty", {"points_balance": 10, "tier": "B"}, version="2026-01-02T00:00:00Z-0002")
        store.put_part("c_a", "loyalty", {"points_balance": 1, "tier": "C"}, version="2026-01-01T00:00:00Z-0009")
        store.put_part("c_a", "alerts", {"open": [{"alert_id": "a1"}]}, version="2026-01-01T00:00:00Z-0001")
        store.put_part("c_a", "alerts", {"open": []}, version="2026-01-01T00:00:00Z-0001")  # same version: replaces
    assert store.parts(["c_a"]) == {"loyalty": [{"points_balance": 10, "tier": "B"}], "alerts": [{"open": []}]}
    assert store.parts(["c_b", "c_a"]) == {
        "loyalty": [{"points_balance": 10, "tier": "B"}, {"points_balance": 20, "tier": None}],
        "alerts": [{"open": []}],
    }
    assert store.parts(["c_nobody"]) == {}


def test_a_failed_transaction_leaves_nothing_behind(tx_store):
    store = tx_store
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction():
            store.create_record("c_a", phone=None, at="T1")
            store.add_events([_event("pos/SH-001", "e1", "c_a", 1000)])
            store.add_purchases([_purchase("p1", "c_a", 100, "SH-001", 1000, "2026-01-01")])
            store.outbox_add([OutboxMessage("crm.customer.events", b"{}", b"c_a")])
            raise RuntimeError("boom")
    assert store.record("c_a") is None
    assert store.event_seen("pos/SH-001", "e1") is False
    assert store.stats(["c_a"]) == StatsRow()
    assert store.outbox_pending() == []
    with store.transaction():  # nested calls join the outer transaction
        store.create_record("c_b", phone=None, at="T1")
        with store.transaction():
            store.add_events([_event("pos/SH-001", "e2", "c_b", 1000)])
    assert store.event_seen("pos/SH-001", "e2") is True and store.customer_count() == 1
