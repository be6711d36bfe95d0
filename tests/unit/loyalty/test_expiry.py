"""Expiry policies, lots consumed oldest first, announcements, debt: hand-built histories."""

from __future__ import annotations

import random

from services.loyalty.domain.account import settle
from services.loyalty.domain.rules import ExpiryRules
from tests.unit.loyalty.helpers import SH, book, facts, movement, purchase, refund, t


def _exp(mode: str, when: str, **kw) -> str | None:
    at = ExpiryRules(mode=mode, **kw).expires_at(t(when), SH)
    return at.isoformat() if at else None


def test_policies_across_month_year_and_leap_boundaries():
    assert _exp("days", "2026-01-15 10:00") == "2027-01-16T00:00:00+08:00"  # end of 2027-01-15
    assert _exp("days", "2027-03-01 10:00") == "2028-03-01T00:00:00+08:00"  # + 365 days = 2028-02-29
    assert _exp("days", "2026-12-31 23:30", days=1) == "2027-01-02T00:00:00+08:00"
    assert _exp("month_end", "2026-01-15 10:00") == "2027-02-01T00:00:00+08:00"  # end of Jan 2027
    assert _exp("month_end", "2026-12-31 23:30") == "2028-01-01T00:00:00+08:00"  # end of Dec 2027
    assert _exp("month_end", "2026-11-03 09:00", months=1) == "2027-01-01T00:00:00+08:00"
    assert _exp("year_end", "2026-01-15 10:00") == "2028-01-01T00:00:00+08:00"  # 2027-01-15 -> end of 2027
    assert _exp("year_end", "2026-03-31 10:00", months=11) == "2028-01-01T00:00:00+08:00"  # 2027-02-28
    assert _exp("year_end", "2026-01-31 10:00", months=0) == "2027-01-01T00:00:00+08:00"
    # 20:00 UTC on Dec 31 is already Jan 1 in Shanghai.
    assert _exp("month_end", "2026-12-31T20:00:00+00:00") == "2028-02-01T00:00:00+08:00"
    assert _exp("never", "2026-01-15 10:00") is None


def test_points_expire_at_their_moment_and_not_a_second_before():
    f = facts([purchase("o1", "100.00", "2026-01-15 10:00"), purchase("o2", "50.00", "2026-01-16 10:00")])
    before = settle(f, book(), customer_id="c_a", now=t("2027-01-15 23:59:59"))
    assert before.balance == 150 and before.expiring == [(t("2027-01-16 00:00"), 100), (t("2027-01-17 00:00"), 50)]
    at = settle(f, book(), customer_id="c_a", now=t("2027-01-16 00:00"))
    assert at.balance == 50
    assert at.targets[("x:p:pos/SH-001:o1", "expiry")].points == -100


def test_redemptions_consume_the_oldest_lots_and_a_late_older_purchase_takes_their_place():
    jan, mar = purchase("jan", "100.00", "2026-01-10 10:00"), purchase("mar", "50.00", "2026-03-10 10:00")
    redeem = movement("r:rd1", "redemption", -120, "2026-04-01 10:00")
    s = settle(facts([jan, mar], movements=[redeem]), book(), customer_id="c_a", now=t("2027-02-01"))
    # Jan's lot was used up (nothing to expire on 2027-01-11); Mar's lot kept 30.
    assert ("x:p:pos/SH-001:jan", "expiry") not in s.targets
    assert s.balance == 30 and s.expiring == [(t("2027-03-11 00:00"), 30)]
    late = purchase("dec", "80.00", "2025-12-20 10:00")  # arrives now, older than both
    s2 = settle(facts([jan, mar, late], movements=[redeem]), book(), customer_id="c_a", now=t("2027-02-01"))
    # The redemption now took Dec's 80 and 40 of Jan; Dec had nothing left to expire, Jan's 60 expired.
    assert s2.targets[("x:p:pos/SH-001:jan", "expiry")].points == -60
    assert s2.balance == 50


def test_refund_of_spent_points_becomes_debt_that_later_earnings_repay_and_balance_stays_at_zero():
    p = purchase("o1", "100.00", "2026-05-01 10:00")
    spend = movement("r:rd1", "redemption", -100, "2026-05-02 10:00")
    back = refund("r1", "o1", "100.00", "2026-05-03 10:00")
    s = settle(facts([p], [back], movements=[spend]), book(), customer_id="c_a", now=t("2026-05-04"))
    assert s.balance == 0 and s.debt == 100
    assert s.targets[("d:c_a", "debt")].points == 100
    later = purchase("o2", "30.00", "2026-05-05 10:00")
    s2 = settle(facts([p, later], [back], movements=[spend]), book(), customer_id="c_a", now=t("2026-05-06"))
    assert s2.balance == 0 and s2.debt == 70


def test_cancelled_redemption_gives_points_back_to_their_lots_or_a_new_lot_when_those_expired():
    p = purchase("o1", "100.00", "2026-01-10 10:00")  # expires 2027-01-11
    spend = movement("r:rd1", "redemption", -100, "2026-12-01 10:00")
    cancel = movement("r:rd1", "cancel", 100, "2026-12-05 10:00")
    s = settle(facts([p], movements=[spend, cancel]), book(), customer_id="c_a", now=t("2026-12-06"))
    assert s.balance == 100 and s.expiring == [(t("2027-01-11 00:00"), 100)]
    late_cancel = movement("r:rd1", "cancel", 100, "2027-02-01 10:00")  # after the lot's moment
    s2 = settle(facts([p], movements=[spend, late_cancel]), book(), customer_id="c_a", now=t("2027-02-02"))
    assert s2.balance == 100 and s2.expiring == [(t("2028-02-02 00:00"), 100)]


def test_announcement_falls_due_notice_days_ahead_and_sets_the_next_due_moment():
    f = facts([purchase("o1", "100.00", "2026-01-15 10:00")])  # expires 2027-01-16 00:00
    early = settle(f, book(), customer_id="c_a", now=t("2026-12-16 23:59"))
    assert early.announce == [] and early.next_due == t("2026-12-17 00:00")
    due = settle(f, book(), customer_id="c_a", now=t("2026-12-17 00:00"))
    assert due.announce == [(t("2027-01-16 00:00"), 100)] and due.next_due == t("2027-01-16 00:00")


def test_manual_adjustments_make_lots_and_take_from_the_oldest():
    moves = [movement("a:1", "manual", 40, "2026-02-01 10:00"), movement("a:2", "manual", -50, "2026-03-01 10:00")]
    s = settle(facts([purchase("o1", "100.00", "2026-01-10 10:00")], movements=moves), book(), customer_id="c_a",
               now=t("2027-01-12"))
    # The -50 took 50 of January's 100; January's remaining 50 expired on 2027-01-11; February's 40 remain.
    assert s.balance == 40
    assert s.targets[("x:p:pos/SH-001:o1", "expiry")].points == -50


def test_invariants_on_random_histories_balance_is_sum_never_negative_and_refunds_within_earned():
    rng = random.Random(11)
    for case in range(60):
        ps = [purchase(f"o{i}", f"{rng.randrange(1, 60000) / 100:.2f}",
                       f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d} {rng.randrange(0, 24):02d}:00")
              for i in range(rng.randrange(1, 15))]
        rs = [refund(f"r{i}", rng.choice(ps).order_id, f"{rng.randrange(1, 40000) / 100:.2f}",
                     f"2026-{rng.randrange(1, 13):02d}-15 10:00") for i in range(rng.randrange(0, 8))]
        moves, held = [], 0
        for i in range(rng.randrange(0, 5)):
            moves.append(movement(f"r:rd{i}", "redemption", -rng.randrange(1, 300), f"2026-{6 + i:02d}-20 10:00"))
            if rng.random() < 0.3:
                moves.append(movement(f"r:rd{i}", "cancel", -moves[-1].points, f"2026-{7 + i:02d}-25 10:00"))
        s = settle(facts(ps, rs, movements=moves), book({"earning": {"caps": {"month": 900}}}),
                   customer_id="c_a", now=t("2027-06-01"))
        total = sum(tg.points for tg in s.targets.values()) + sum(m.points for m in moves)
        held = sum(lot.remaining for lot in s.lots.open_lots())
        assert total == s.balance == held >= 0, case
        for p in ps:
            earned = sum(tg.points for (b, rule), tg in s.targets.items() if b == p.bucket and rule != "refund")
            net = earned + (s.targets[(p.bucket, "refund")].points if (p.bucket, "refund") in s.targets else 0)
            assert 0 <= net <= earned
