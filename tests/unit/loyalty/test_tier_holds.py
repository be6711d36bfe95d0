"""Staff tier overrides (issue 14) as holds in the tier timeline, on hand-built histories: what they fix, when
the normal rules resume, earning at the held tier, and a settle from a checkpoint that agrees with a full one."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.loyalty.domain.account import settle
from services.loyalty.domain.holds import TierHold
from services.loyalty.domain.tiers import timeline
from tests.unit.loyalty.helpers import book, facts, purchase, t

# Two visits of 750.00 a month from November: C from Jan 8 (Nov..Jan: 6 visits, 4,500.00).
BASE = [purchase("n1", "750.00", "2026-11-10 12:00"), purchase("n2", "750.00", "2026-11-20 12:00"),
        purchase("d1", "750.00", "2026-12-05 12:00"), purchase("d2", "750.00", "2026-12-15 12:00"),
        purchase("j1", "750.00", "2027-01-03 12:00"), purchase("j2", "750.00", "2027-01-08 12:00")]


def _hold(tier: str, start: str, end: str, until: str = "x") -> TierHold:
    return TierHold("ov_1", tier, t(start), t(end), until)


def _changes(line):
    return [(c.at.isoformat(), c.previous, c.tier) for c in line.changes]


def test_a_hold_fixes_the_tier_against_purchases_and_reviews_and_the_next_review_after_it_decides():
    # B held from Dec 1 12:00 through Feb 28 (ends Mar 1 00:00): Jan 8's purchase would have made C (below B:
    # no change), the Feb 1 review (Nov..Jan meets C) is skipped, the Mar 1 review (Dec..Feb: 4 visits,
    # 3,000.00: no tier) is the first after it and downgrades.
    hold = _hold("B", "2026-12-01 12:00", "2027-03-01 00:00", "2027-02-28")
    line = timeline(BASE, [], book(), now=t("2027-03-15 00:00"), holds=(hold,))
    assert _changes(line) == [("2026-12-01T12:00:00+08:00", None, "B"), ("2027-03-01T00:00:00+08:00", "B", None)]
    assert line.changes[0].reason == "staff override ov_1 until 2027-02-28"
    assert line.tier_before["p:pos/SH-001:d1"] == "B"  # earning follows the held tier


def test_after_a_hold_a_purchase_that_meets_a_better_tier_upgrades_at_once():
    # No tier held Nov 15..Dec 31 (ends Jan 1): the Jan 8 purchase that meets C upgrades as usual.
    line = timeline(BASE, [], book(), now=t("2027-01-31 00:00"),
                    holds=(TierHold("ov_1", "C", t("2026-11-15 00:00"), t("2026-11-15 00:00"), "x"),))
    assert _changes(line) == [("2027-01-08T12:00:00+08:00", None, "C")]  # an empty hold changes nothing
    held_low = timeline(BASE, [], book(), now=t("2027-01-31 00:00"),
                        holds=(_hold("C", "2026-11-15 00:00", "2027-01-05 00:00"),))
    assert _changes(held_low) == [("2026-11-15T00:00:00+08:00", None, "C")]


def test_a_hold_alone_gives_a_member_without_purchases_a_tier_until_the_next_review():
    line = timeline([], [], book(), now=t("2026-12-15 00:00"), holds=(_hold("A", "2026-11-10 00:00",
                                                                            "2026-12-01 00:00"),))
    assert _changes(line) == [("2026-11-10T00:00:00+08:00", None, "A"), ("2026-12-01T00:00:00+08:00", "A", None)]


@pytest.mark.parametrize("start,end", [
    ("2026-12-20 10:00", "2027-04-01 00:00"),  # spans the checkpoint's horizon (Feb 1)
    ("2027-02-10 10:00", "2027-03-20 00:00"),  # begins after it
    ("2026-11-25 10:00", "2027-01-01 00:00"),  # over before it
])
def test_a_settle_from_a_checkpoint_agrees_with_one_from_every_fact(start, end):
    rules = book(tier_multipliers="A=2")  # so the held tier shows in the points too
    later = BASE + [purchase("f1", "750.00", "2027-02-03 12:00"), purchase("m1", "900.00", "2027-03-05 12:00")]
    held = (_hold("A", start, end),)
    now, horizon = t("2027-04-10 00:00"), t("2027-02-01 00:00")
    since = [p for p in later if p.time >= horizon]
    whole = settle(replace(facts(later), holds=held), rules, customer_id="c_a", now=now)
    first = settle(replace(facts(later), holds=held), rules, customer_id="c_a", now=t("2027-03-25 00:00"),
                   snapshot_at=horizon)
    resumed = settle(replace(facts(since), holds=held), rules, customer_id="c_a", now=now, start=first.snapshot)
    assert (resumed.tier, resumed.timeline.changes[-1]) == (whole.tier, whole.timeline.changes[-1])
    buckets = {p.bucket for p in since}
    earned = {k: v.points for k, v in whole.targets.items() if k[0] in buckets}
    assert {k: v.points for k, v in resumed.targets.items() if k[0] in buckets} == earned
    in_hold = t(start) <= t("2027-03-05 12:00") < t(end)
    assert earned[("p:pos/SH-001:m1", "base")] == 900
    assert sum(n for (b, _), n in earned.items() if b == "p:pos/SH-001:m1") == (1800 if in_hold else 900)
