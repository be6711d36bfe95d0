"""Audience rules: profiles, filters, consent and contact cap, and the deterministic split."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

import pytest

from services.campaigns.domain.audience import (
    CustomerFacts,
    age_band,
    bucket,
    consent,
    exclusion,
    group_of,
    home_store,
    matches,
    plan,
    profile,
)
from services.campaigns.domain.definition import AudienceFilter, Definition
from shared.contract.facts import FieldValue

ON = date(2026, 3, 11)


def fv(name: str, value, ms: int = 1000, source: str = "web/shop", eid: str = "e1") -> FieldValue:
    return FieldValue(name, value, ms, source, eid)


def facts(cid: str, **kw) -> CustomerFacts:
    return CustomerFacts(customer_id=cid, **kw)


def reference_bucket(campaign: str, customer: str) -> int:
    """The documented rule, written out independently: first 8 bytes of sha256, big-endian, mod 10^6."""
    digest = hashlib.sha256(campaign.encode() + b"\x00" + customer.encode()).digest()
    return int(digest[:8].hex(), 16) % 1_000_000


@pytest.mark.parametrize(("birthday", "band"), [
    ("2001-03-12", "<25"), ("2001-03-11", "25-34"), ("1991-03-12", "25-34"), ("1991-03-11", "35-44"),
    ("1981-03-11", "45-54"), ("1971-03-11", "55+"), ("1930-01-01", "55+"), (None, "unknown"),
    ("not a date", "unknown"), ("2030-01-01", "unknown"),
])
def test_age_band_turns_on_the_birthday(birthday, band):
    assert age_band(birthday, ON) == band


def test_home_store_is_most_days_then_most_recent_then_lowest_id():
    assert home_store([("SH-002", 3, "2026-01-01"), ("SH-001", 2, "2026-02-01")]) == "SH-002"
    assert home_store([("SH-002", 2, "2026-01-01"), ("SH-001", 2, "2026-02-01")]) == "SH-001"
    assert home_store([("SH-009", 2, "2026-02-01"), ("SH-003", 2, "2026-02-01")]) == "SH-003"
    assert home_store([]) is None


def test_profile_reads_recency_frequency_net_spend_and_attributes():
    f = facts("c1", purchase_count=3, purchase_days=2, first_day="2026-01-01", last_day="2026-03-01",
              spend_minor=30000, refund_minor=5000, store_days=(("SH-001", 2, "2026-03-01"),),
              categories=frozenset({"skincare"}), tier="gold",
              attributes={"gender": fv("gender", "F"), "birthday": fv("birthday", "1990-05-01"),
                          "city": fv("city", "Shanghai")})
    p = profile(f, ON)
    assert (p.recency_days, p.frequency, p.net_spend_minor, p.home_store, p.tier) == (10, 3, 25000, "SH-001", "gold")
    assert (p.gender, p.city, p.age_band, p.returning) == ("F", "Shanghai", "35-44", True)
    assert profile(facts("c2"), ON).returning is False and profile(facts("c2"), ON).recency_days is None


def test_every_criterion_must_hold():
    who = profile(facts("c1", purchase_count=2, purchase_days=2, first_day="2026-01-01", last_day="2026-03-01",
                        spend_minor=20000, categories=frozenset({"Skincare"}), tier="gold",
                        attributes={"city": fv("city", "Shanghai"), "gender": fv("gender", "F")}), ON)
    assert matches(AudienceFilter(), who)
    assert matches(AudienceFilter(tiers=["GOLD", "silver"], cities=["shanghai"], genders=["f"]), who)
    assert matches(AudienceFilter(categories=["skincare", "makeup"]), who)
    assert not matches(AudienceFilter(categories=["makeup"]), who)
    assert matches(AudienceFilter(recency_days={"min": 10, "max": 10}, frequency={"min": 2}), who)
    assert not matches(AudienceFilter(recency_days={"max": 9}), who)
    assert matches(AudienceFilter(spend={"min": "200.00"}), who)
    assert not matches(AudienceFilter(spend={"min": "200.01"}), who)
    assert not matches(AudienceFilter(home_stores=["SH-001"]), who)  # no purchase store known
    assert not matches(AudienceFilter(age_bands=["25-34"]), who)
    assert matches(AudienceFilter(age_bands=["unknown"]), who)
    assert matches(AudienceFilter(p_alive={"min": 0.5}), who, 0.7)
    assert not matches(AudienceFilter(p_alive={"min": 0.5}), who, 0.2)
    assert not matches(AudienceFilter(p_alive={"min": 0.0}), who, None)  # no history, no score


def test_consent_newest_value_wins_and_wechat_follow_counts():
    assert consent({}, "sms") is None
    assert consent({"consent.sms": fv("consent.sms", True)}, "sms") is True
    assert consent({"consent.sms": fv("consent.sms", False)}, "sms") is False
    assert consent({"consent.sms": fv("consent.sms", True)}, "email") is None
    later_unfollow = {"consent.wechat": fv("consent.wechat", True, 1000), "wechat_following": fv("wf", False, 2000)}
    assert consent(later_unfollow, "wechat") is False
    assert consent({"wechat_following": fv("wf", True)}, "wechat") is True


def test_exclusion_reasons_in_order_and_the_cap_boundary():
    granted = {"consent.sms": fv("consent.sms", True)}
    assert exclusion({}, "sms", 9, 4) == "no_consent"
    assert exclusion({"consent.sms": fv("consent.sms", False)}, "sms", 9, 4) == "opted_out"
    assert exclusion(granted, "sms", 3, 4) is None
    assert exclusion(granted, "sms", 4, 4) == "contact_cap"


def test_bucket_is_the_documented_hash_and_the_split_follows_the_share():
    ids = [f"c_{i:05d}" for i in range(20_000)]
    assert all(bucket("cmp_x", c) == reference_bucket("cmp_x", c) for c in ids[:500])
    control = sum(group_of(bucket("cmp_x", c), Decimal("0.10")) == "control" for c in ids)
    # Binomial(20,000, 0.1): mean 2,000, sd 42.4; the hash is fixed, so this count is too.
    assert 1_800 < control < 2_200
    assert group_of(99_999, Decimal("0.10")) == "control" and group_of(100_000, Decimal("0.10")) == "treatment"
    assert bucket("cmp_x", "c_00001") != bucket("cmp_y", "c_00001")


def test_plan_counts_matches_exclusions_and_splits_the_rest():
    d = Definition(name="n", objective="promotion", channel="sms", starts_at="2026-03-11T00:00:00+00:00",
                   ends_at="2026-03-20T00:00:00+00:00", control_share=Decimal("0.5"),
                   audience=AudienceFilter(cities=["Shanghai"]))
    yes = {"consent.sms": fv("consent.sms", True), "city": fv("city", "Shanghai")}
    rows = [facts(f"c{i}", attributes=yes) for i in range(6)]
    rows += [facts("no", attributes={"city": fv("city", "Shanghai")}),
             facts("out", attributes={**yes, "consent.sms": fv("consent.sms", False)}),
             facts("elsewhere", attributes={**yes, "city": fv("city", "Beijing")})]
    got = plan("cmp_1", d, rows, on=ON, recent_touches={"c5": 4}, cap=4)
    assert got.matched == 8
    assert dict(got.excluded) == {"no_consent": 1, "opted_out": 1, "contact_cap": 1}
    assert [m.customer_id for m in got.members] == ["c0", "c1", "c2", "c3", "c4"]
    for m in got.members:
        want = "control" if reference_bucket("cmp_1", m.customer_id) < 500_000 else "treatment"
        assert m.group == want
    # The same inputs give the same plan.
    assert plan("cmp_1", d, list(reversed(rows)), on=ON, recent_touches={"c5": 4}, cap=4).members == got.members
