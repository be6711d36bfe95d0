"""Issue 14: an imported tier holds from its ``tier_since`` until the first review after it, then the rules
judge the member; an opening lot (a movement dated at its earn moment) expires by the rule in effect then."""

from __future__ import annotations

from dataclasses import replace

from services.loyalty.domain.account import settle
from services.loyalty.domain.model import ADJUST, OPENING, Entry, TierImport
from services.loyalty.domain.tiers import timeline
from shared.clock import iso_utc
from tests.unit.loyalty.helpers import book, facts, purchase, t


def _imported(tier: str, since: str, *, n: int = 1, imported_at: str | None = None) -> TierImport:
    return TierImport("pos/import", f"m-{n}-tier", "c_a", tier, t(since), t(imported_at) if imported_at else None)


def _changes(line):
    return [(c.at.isoformat(), c.previous, c.tier, c.direction) for c in line.changes]


def test_an_imported_tier_holds_until_the_first_review_after_it_then_the_rules_judge():
    imports = [_imported("A", "2026-10-15 00:00")]
    assert timeline([], [], book(), now=t("2026-10-31 23:59"), imports=imports).tier == "A"
    line = timeline([], [], book(), now=t("2026-11-01 00:00"), imports=imports)
    assert line.tier is None
    assert _changes(line) == [("2026-10-15T00:00:00+08:00", None, "A", "upgrade"),
                              ("2026-11-01T00:00:00+08:00", "A", None, "downgrade")]


def test_a_member_who_meets_a_tier_by_the_review_keeps_that_one():
    # Two visits of 750.00 in each of Aug, Sep, Oct: C's averages over the three months the Nov 1 review sees.
    bought = [purchase(f"p{m}{d}", "750.00", f"2026-{m:02d}-{d:02d} 12:00") for m in (8, 9, 10) for d in (5, 20)]
    line = timeline(bought, [], book(), now=t("2026-11-02 00:00"), imports=[_imported("A", "2026-10-25 00:00")])
    assert line.tier == "C"
    assert _changes(line)[-2:] == [("2026-10-25T00:00:00+08:00", "C", "A", "upgrade"),
                                   ("2026-11-01T00:00:00+08:00", "A", "C", "downgrade")]


def test_grace_months_apply_from_that_review_and_an_unknown_tier_is_not_held():
    graced = book(tier_grace_months=1)
    imports = [_imported("B", "2026-10-15 00:00")]
    assert timeline([], [], graced, now=t("2026-11-20 00:00"), imports=imports).tier == "B"
    assert timeline([], [], graced, now=t("2026-12-01 00:00"), imports=imports).tier is None
    assert timeline([], [], book(), now=t("2026-10-20 00:00"), imports=[_imported("Gold", "2026-10-15 00:00")]).tier \
        is None


def test_a_tier_held_since_long_before_the_import_holds_until_the_first_review_after_the_import():
    # The member file of 2026-12-05 says: A since 2021-06-01, no purchases. Not a downgrade at 2021-07-01.
    imports = [_imported("A", "2021-06-01", imported_at="2026-12-05 10:00")]
    line = timeline([], [], book(), now=t("2026-12-05 12:00"), imports=imports)
    assert line.tier == "A"
    assert _changes(line) == [("2021-06-01T00:00:00+08:00", None, "A", "upgrade")]
    assert timeline([], [], book(), now=t("2026-12-31 23:59"), imports=imports).tier == "A"
    line = timeline([], [], book(), now=t("2027-01-01 00:00"), imports=imports)
    assert line.tier is None
    assert _changes(line) == [("2021-06-01T00:00:00+08:00", None, "A", "upgrade"),
                              ("2027-01-01T00:00:00+08:00", "A", None, "downgrade")]
    # With a grace month the first failing review is 2027-01-01 and the downgrade 2027-02-01.
    graced = book(tier_grace_months=1)
    assert timeline([], [], graced, now=t("2027-01-31 23:59"), imports=imports).tier == "A"
    assert timeline([], [], graced, now=t("2027-02-01 00:00"), imports=imports).tier is None


def test_an_import_at_a_review_moment_holds_through_that_review():
    imports = [_imported("B", "2024-03-10", imported_at="2026-12-01 00:00")]
    assert timeline([], [], book(), now=t("2026-12-31 23:59"), imports=imports).tier == "B"
    assert timeline([], [], book(), now=t("2027-01-01 00:00"), imports=imports).tier is None


def test_a_purchase_after_the_import_still_upgrades_and_the_review_then_judges():
    imports = [_imported("C", "2021-06-01", imported_at="2026-12-05 10:00")]
    # Twelve visits of 800.00: 12 visits and 9,600 CNY in Oct..Dec reach B's monthly averages (4 visits, 3,000).
    bought = [purchase(f"p{d}", "800.00", f"2026-12-{d:02d} 12:00") for d in range(6, 18)]
    line = timeline(bought, [], book(), now=t("2027-01-01 00:00"), imports=imports)
    assert line.tier == "B"
    assert _changes(line) == [("2021-06-01T00:00:00+08:00", None, "C", "upgrade"),
                              ("2026-12-17T12:00:00+08:00", "C", "B", "upgrade")]
    # The reviews up to 2027-03-01 (window Dec..Feb) still see them; 2027-04-01 (Jan..Mar) sees nothing: no tier.
    assert timeline(bought, [], book(), now=t("2027-03-31 23:59"), imports=imports).tier == "B"
    assert timeline(bought, [], book(), now=t("2027-04-01 00:00"), imports=imports).tier is None


def test_a_checkpoint_between_tier_since_and_the_import_agrees_with_a_full_replay():
    imports = [_imported("A", "2021-06-01", imported_at="2026-12-05 10:00")]
    bought = [purchase("p1", "100.00", "2023-02-10 12:00"), purchase("p2", "100.00", "2026-12-20 12:00")]
    full = timeline(bought, [], book(), now=t("2026-12-05 12:00"), imports=imports, snapshot_at=t("2023-03-01 00:00"))
    state = full.snapshot
    assert state is not None and state.tier == "A" and state.failing_since is None
    later = [p for p in bought if p.time >= state.at]
    for now, tier in (("2026-12-31 23:59", "A"), ("2027-01-01 00:00", None), ("2027-03-01 00:00", None)):
        resumed = timeline(later, [], book(), now=t(now), imports=imports, start=state)
        replayed = timeline(bought, [], book(), now=t(now), imports=imports)
        assert (resumed.tier, replayed.tier) == (tier, tier)
        assert resumed.changes[-1] == replayed.changes[-1]
        assert resumed.tier_before["p:pos/SH-001:p2"] == replayed.tier_before["p:pos/SH-001:p2"] == "A"


def _opening(n: int, points: int, earned: str) -> Entry:
    bucket = f"o:pos/import:l-{n}"
    return Entry(f"{bucket}|{OPENING}|1", "c_a", bucket, OPENING, ADJUST, points, iso_utc(t(earned)),
                 iso_utc(t("2026-12-05 10:00")))


def test_opening_lots_expire_365_days_after_their_earn_day_and_count_until_then():
    lots = [_opening(1, 100, "2025-12-04 09:00"), _opening(2, 40, "2025-12-05 23:00"), _opening(3, 7, "2026-06-01")]
    # Lot 1 ended at the midnight closing 2026-12-04; lot 2 holds through 2026-12-05.
    s = settle(facts(movements=lots), book(), customer_id="c_a", now=t("2026-12-05 12:00"))
    assert s.balance == 47
    assert [(tgt.bucket, tgt.points) for tgt in s.targets.values() if tgt.rule == "expiry"] == [
        ("x:o:pos/import:l-1", -100)]
    later = settle(facts(movements=lots), book(), customer_id="c_a", now=t("2026-12-06 00:00"))
    assert later.balance == 7


def test_a_tier_imported_and_a_purchase_the_same_month_settle_together():
    f = replace(facts([purchase("p1", "100.00", "2026-11-03 12:00")]), tier_imports=[_imported("B", "2026-11-01")])
    s = settle(f, book(), customer_id="c_a", now=t("2026-11-20 00:00"))
    assert s.tier == "B" and s.balance == 100
