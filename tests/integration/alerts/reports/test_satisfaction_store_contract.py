"""Issue 15, satisfaction: one contract for both alerts store adapters (SQLite, MongoDB via mongomock)."""

from __future__ import annotations

from datetime import date

from services.alerts.reports.satisfaction import NO_STORE, ReasonRow, SurveyScore, VisitDay
from shared.storage.membership import Membership


def _counts(**by_score: int) -> list[int]:
    out = [0] * 11
    for score, n in by_score.items():
        out[int(score[1:])] = n
    return out


def test_survey_scores_add_up_per_store_and_month_over_batches(store):
    with store.transaction():
        store.add_survey_scores([SurveyScore("S01", "2026-11", 9), SurveyScore("S01", "2026-11", 9),
                                 SurveyScore("S01", "2026-11", 6), SurveyScore("S02", "2026-11", 10),
                                 SurveyScore(NO_STORE, "2026-11", 0), SurveyScore("S01", "2026-10", 7)])
    with store.transaction():
        store.add_survey_scores([SurveyScore("S01", "2026-11", 9)])
        store.add_survey_scores([])
    months = ["2026-10", "2026-11", "2026-12"]
    assert store.survey_counts(months=months, stores=frozenset({"S01"})) == {
        "2026-10": _counts(s7=1), "2026-11": _counts(s6=1, s9=3), "2026-12": [0] * 11}
    assert store.survey_counts(months=["2026-11"], stores=frozenset({"S01", "S02"})) == {
        "2026-11": _counts(s6=1, s9=3, s10=1)}
    assert store.survey_counts(months=["2026-11"], stores=None) == {"2026-11": _counts(s0=1, s6=1, s9=3, s10=1)}
    assert store.survey_counts(months=["2026-11"], stores=frozenset()) == {"2026-11": [0] * 11}


def test_purchase_days_count_once_per_customer_through_merges(store):
    with store.transaction():
        store.add_visit_days([VisitDay("S01", "r1", date(2026, 11, 2)), VisitDay("S01", "r1", date(2026, 11, 2)),
                              VisitDay("S01", "r2", date(2026, 11, 2)), VisitDay("S01", "r3", date(2026, 10, 31)),
                              VisitDay("S02", "r3", date(2026, 11, 1))])
    with store.transaction():
        store.add_visit_days([VisitDay("S01", "r1", date(2026, 11, 30)), VisitDay("S01", "r1", date(2026, 11, 2))])
    months = ["2026-10", "2026-11"]
    # r1: 2 and 30 November; r2: 2 November; r3: 31 October at S01, 1 November at S02.
    assert store.repeat_buyers(months=months, stores=frozenset({"S01"})) == (3, 1)
    assert store.repeat_buyers(months=months, stores=None) == (3, 2)
    assert store.repeat_buyers(months=["2026-11"], stores=frozenset({"S02"})) == (1, 0)
    assert store.repeat_buyers(months=["2026-12"], stores=None) == (0, 0)
    with store.transaction():
        store.add_visit_days([VisitDay("S03", "r4", date(2026, 11, 5)), VisitDay("S03", "r5", date(2026, 11, 5)),
                              VisitDay("S03", "r6", date(2026, 11, 6)), VisitDay("S03", "r7", date(2026, 11, 7))])
        store.apply_memberships([Membership("r5", "r4", "2026-12-01T00:00:00.000000Z"),
                                 Membership("r7", "r6", "2026-12-01T00:00:00.000000Z")])
    # r4 + r5 bought on one day: one customer, one day; r6 + r7 on two days: one loyal customer.
    assert store.repeat_buyers(months=["2026-11"], stores=frozenset({"S03"})) == (2, 1)
    with store.transaction():
        store.apply_memberships([Membership("r2", "r1", "2026-12-01T00:00:00.000000Z"),
                                 Membership("r3", "r1", "2026-12-01T00:00:00.000000Z")])
    # One customer now: r2 bought on a day r1 did, r3's 31 October is another month.
    assert store.repeat_buyers(months=months, stores=frozenset({"S01"})) == (1, 1)
    assert store.repeat_buyers(months=["2026-11"], stores=frozenset({"S01"})) == (1, 1)  # 2 and 30 November
    with store.transaction():
        store.apply_memberships([Membership("r1", "r1", "2026-12-01T00:00:01.000000Z"),
                                 Membership("r3", "r3", "2026-12-01T00:00:01.000000Z")])
    # r2 stays with r1 (2 November twice, 30 November); r3 is its own again.
    assert store.repeat_buyers(months=["2026-10"], stores=frozenset({"S01"})) == (1, 0)
    assert store.repeat_buyers(months=months, stores=None) == (4, 3)


def test_reasons_count_per_store_and_an_erasure_clears_the_text_but_keeps_the_count(store):
    rows = [ReasonRow("a1", "churn_red", "S01", "2026-11", "price_competition", None, "r1",
                      "2026-11-03T01:00:00.000000Z"),
            ReasonRow("a2", "complaint", "S01", "2026-11", "other", "moved to Hangzhou", "r2",
                      "2026-11-04T01:00:00.000000Z"),
            ReasonRow("a3", "churn_yellow", "S02", "2026-11", None, None, "r2", "2026-11-05T01:00:00.000000Z"),
            ReasonRow("a4", "complaint", None, "2026-11", "other", "no store", "r3", "2026-11-06T01:00:00.000000Z"),
            ReasonRow("a5", "complaint", "S01", "2026-10", "price_competition", None, "r1",
                      "2026-10-06T01:00:00.000000Z")]
    with store.transaction():
        for row in rows:
            store.put_reason(row)
    assert store.reason_counts(month="2026-11", stores=frozenset({"S01"})) == {
        ("S01", "price_competition"): 1, ("S01", "other"): 1}
    assert store.reason_counts(month="2026-11", stores=None) == {
        ("S01", "price_competition"): 1, ("S01", "other"): 1, ("S02", None): 1, (None, "other"): 1}
    assert store.reasons_of(["r2"]) == [rows[1], rows[2]]
    with store.transaction():
        store.put_reason(ReasonRow("a3", "churn_yellow", "S02", "2026-11", "no_clear_difference", None, "r2",
                                   "2026-11-07T01:00:00.000000Z"))  # resolved again: the later reason
        store.erase_satisfaction(["r2"])
    assert store.reasons_of(["r2"]) == []
    assert store.reason_counts(month="2026-11", stores=frozenset({"S01", "S02"})) == {
        ("S01", "price_competition"): 1, ("S01", "other"): 1, ("S02", "no_clear_difference"): 1}


def test_the_text_of_a_reason_is_sealed_at_rest(store):
    with store.transaction():
        store.put_reason(ReasonRow("a1", "complaint", "S01", "2026-11", "other", "call 13800138000", "r1",
                                   "2026-11-03T01:00:00.000000Z"))
    if hasattr(store, "db"):
        held = store.db.conn().execute("SELECT reason_text FROM sat_reasons").fetchone()[0]
    else:
        held = store.mdb["sat_reasons"].find_one({"_id": "a1"})["reason_text"]
    assert "13800138000" not in held
    assert store.reasons_of(["r1"])[0].reason_text == "call 13800138000"


def test_an_erasure_takes_the_customers_purchase_days(store):
    with store.transaction():
        store.add_visit_days([VisitDay("S01", "r1", date(2026, 11, 2)), VisitDay("S01", "r2", date(2026, 11, 3))])
        store.apply_memberships([Membership("r2", "r1", "2026-12-01T00:00:00.000000Z")])
    with store.transaction():
        store.erase_customer("r1", records=["r1", "r2"], erasure_id="er1", anon="anon")
    assert store.repeat_buyers(months=["2026-11"], stores=None) == (0, 0)


def test_loyal_customers_on_a_random_history_with_merges_match_a_count_by_hand(store):
    # Records merged into others, several stores, days repeated over stores and months: each scope's count is the
    # customers (records mapped as merged) with a purchase day in the months there, and those with two distinct.
    import random
    from collections import defaultdict

    rng = random.Random(16)
    records = [f"r{n:02d}" for n in range(40)]
    stores = ["S01", "S02", "S03"]
    visits = [VisitDay(rng.choice(stores), rng.choice(records),
                       date(2026, rng.choice([9, 10, 11]), rng.choice([1, 2, 30]))) for _ in range(120)]
    owner = {r: r for r in records}
    for r in rng.sample(records[8:], 12):
        owner[r] = rng.choice(records[:8])
    with store.transaction():
        store.add_visit_days(visits)
        store.apply_memberships([Membership(r, c, "2026-12-01T00:00:00.000000Z") for r, c in owner.items() if r != c])
    months = ["2026-10", "2026-11"]
    for scope in (None, frozenset({"S01"}), frozenset({"S01", "S02"})):
        days: dict[str, set[date]] = defaultdict(set)
        for v in visits:
            if f"{v.day:%Y-%m}" in months and (scope is None or v.store_id in scope):
                days[owner[v.record_id]].add(v.day)
        assert store.repeat_buyers(months=months, stores=scope) == (
            len(days), sum(1 for d in days.values() if len(d) >= 2)), scope
