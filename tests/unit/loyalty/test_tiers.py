"""Tiers on hand-built histories across month and year boundaries, with late events."""

from __future__ import annotations

from services.loyalty.domain.account import settle
from services.loyalty.domain.tiers import next_review, timeline
from tests.unit.loyalty.helpers import book, facts, purchase, refund, t

# Two visits of 750.00 a month: exactly C's averages (2 visits, 1,500 CNY) once three months are in.
BASE = [purchase("n1", "750.00", "2026-11-10 12:00"), purchase("n2", "750.00", "2026-11-20 12:00"),
        purchase("d1", "750.00", "2026-12-05 12:00"), purchase("d2", "750.00", "2026-12-15 12:00"),
        purchase("j1", "750.00", "2027-01-03 12:00"), purchase("j2", "750.00", "2027-01-08 12:00")]


def _changes(line):
    return [(c.at.isoformat(), c.previous, c.tier, c.direction) for c in line.changes]


def test_upgrade_at_once_across_the_year_boundary_and_downgrade_only_at_review():
    line = timeline(BASE, [], book(), now=t("2027-03-15 00:00"))
    assert _changes(line) == [
        ("2027-01-08T12:00:00+08:00", None, "C", "upgrade"),  # Nov+Dec+Jan: 6 visits, 4,500.00
        # Feb 1 review (Nov..Jan) keeps C; Mar 1 review (Dec..Feb) sees 4 visits and 3,000.00
        ("2027-03-01T00:00:00+08:00", "C", None, "downgrade"),
    ]
    assert line.tier is None
    # The purchase that qualified earns at the tier held before it.
    assert line.tier_before["p:pos/SH-001:j2"] is None


def test_same_day_purchases_are_one_visit():
    same_day = BASE[:-1] + [purchase("j2", "375.00", "2027-01-03 18:00"), purchase("j3", "375.00", "2027-01-03 19:00")]
    assert timeline(same_day, [], book(), now=t("2027-01-31")).tier is None


def test_visit_day_is_the_store_day_not_utc():
    # 2027-01-07 17:00 UTC is 2027-01-08 01:00 in Shanghai: a day of its own.
    moved = BASE[:-1] + [purchase("j2", "750.00", "2027-01-07T17:00:00+00:00")]
    line = timeline(moved, [], book(), now=t("2027-01-31"))
    assert _changes(line) == [("2027-01-07T17:00:00+00:00", None, "C", "upgrade")]


def test_late_purchases_in_a_past_month_undo_a_downgrade():
    late = [purchase("f1", "750.00", "2027-02-14 12:00"), purchase("f2", "750.00", "2027-02-20 12:00")]
    line = timeline(BASE + late, [], book(), now=t("2027-03-15"))
    assert _changes(line) == [("2027-01-08T12:00:00+08:00", None, "C", "upgrade")]
    assert line.tier == "C"


def test_a_refund_counts_from_its_own_time_and_is_judged_at_the_next_review():
    r = refund("r1", "j2", "0.01", "2027-01-09 10:00")
    line = timeline(BASE, [r], book(), now=t("2027-02-15"), order_owner={p.order_id: p.bucket for p in BASE})
    assert _changes(line) == [("2027-01-08T12:00:00+08:00", None, "C", "upgrade"),
                              ("2027-02-01T00:00:00+08:00", "C", None, "downgrade")]


def test_grace_period_keeps_the_tier_through_one_more_review():
    line = timeline(BASE, [], book(tier_grace_months=1), now=t("2027-05-15"))
    assert _changes(line) == [("2027-01-08T12:00:00+08:00", None, "C", "upgrade"),
                              ("2027-04-01T00:00:00+08:00", "C", None, "downgrade")]


def test_climb_tier_by_tier_then_drop_two_levels_at_one_review_after_grace():
    big = [purchase(f"x{m}-{d}", "900.00", f"2026-{m:02d}-{d:02d} 12:00") for m in (10, 11, 12) for d in range(1, 7)]
    line = timeline(big, [], book(), now=t("2027-04-10"))
    assert _changes(line) == [
        ("2026-10-06T12:00:00+08:00", None, "C", "upgrade"),  # 6 visits, 5,400.00 >= 3 x (2, 1,500)
        ("2026-11-06T12:00:00+08:00", "C", "B", "upgrade"),  # 12 visits, 10,800.00 >= 3 x (4, 3,000)
        ("2026-12-06T12:00:00+08:00", "B", "A", "upgrade"),  # 18 visits, 16,200.00 >= 3 x (6, 5,000)
        ("2027-02-01T00:00:00+08:00", "A", "B", "downgrade"),  # Nov..Jan: 12 visits, 10,800.00
        ("2027-03-01T00:00:00+08:00", "B", "C", "downgrade"),  # Dec..Feb: 6 visits, 5,400.00
        ("2027-04-01T00:00:00+08:00", "C", None, "downgrade"),  # Jan..Mar: nothing
    ]
    graced = timeline(big, [], book(tier_grace_months=1), now=t("2027-04-10"))
    # Feb 1 is the first failing review; Mar 1 (one month on) downgrades straight to what Dec..Feb is worth.
    assert _changes(graced)[3:] == [("2027-03-01T00:00:00+08:00", "A", "C", "downgrade")]
    assert graced.tier == "C"


def test_tier_multiplier_uses_the_tier_at_purchase_time():
    rules = book({"earning": {"tiers": {"C": "1.5"}}})
    after = purchase("after", "100.00", "2027-01-20 12:00")
    s = settle(facts(BASE + [after]), rules, customer_id="c_a", now=t("2027-01-31"))
    assert s.targets[("p:pos/SH-001:after", "tier:C")].points == 50
    assert ("p:pos/SH-001:j2", "tier:C") not in s.targets
    assert s.tier == "C"


def test_reviews_follow_the_review_period_and_next_review_is_the_due_moment():
    rules = book(tier_review_months=3)
    assert next_review(rules, t("2027-01-08 12:00")).isoformat() == "2027-04-01T00:00:00+08:00"
    assert next_review(book(), t("2026-12-31 23:59")).isoformat() == "2027-01-01T00:00:00+08:00"
    line = timeline(BASE, [], rules, now=t("2027-06-15"))
    assert _changes(line) == [("2027-01-08T12:00:00+08:00", None, "C", "upgrade"),
                              ("2027-04-01T00:00:00+08:00", "C", None, "downgrade")]
