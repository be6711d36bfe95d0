"""The rule book: settings, rules documents, versions by effective moment, validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.loyalty.config import LoyaltySettings
from services.loyalty.domain.model import Entry
from services.loyalty.domain.statements import statement
from tests.unit.loyalty.helpers import SH, book, t


def test_settings_describe_the_default_rule_book():
    cfg = LoyaltySettings(_env_file=None, category_multipliers="skincare=2, makeup=1.5", caps="day=5000",
                          expiry_mode="month_end", expiry_months=6, tier_grace_months=1)
    rules = book(**{k: getattr(cfg, k) for k in ("category_multipliers", "caps", "expiry_mode", "expiry_months",
                                                 "tier_grace_months")}).at(t("2026-01-01 00:00"))
    assert {k: str(v) for k, v in rules.earning.categories.items()} == {"skincare": "2", "makeup": "1.5"}
    assert rules.earning.caps == {"day": 5000}
    assert (rules.expiry.mode, rules.expiry.months, rules.tiers.grace_months) == ("month_end", 6, 1)
    assert [lv.name for lv in rules.tiers.levels] == ["A", "B", "C"]
    with pytest.raises(ValueError):
        LoyaltySettings(_env_file=None, caps="day").base_rules()


def test_versions_take_effect_at_their_moment_and_override_settings_by_section():
    b = book([{"earning": {"categories": {"skincare": "2"}}},
              {"effective_from": "2026-06-01T00:00:00+08:00", "earning": {"points_per_unit": "2"},
               "expiry": {"mode": "never"}}], expiry_days=100)
    before, after = b.at(t("2026-05-31 23:59")), b.at(t("2026-06-01 00:00"))
    assert (before.earning.rate(), after.earning.rate()) == (1, 2)
    assert after.earning.categories == {}  # a version's section replaces the settings' one key by key
    assert before.expiry.days == 100 and after.expiry.mode == "never"
    assert b.expires_at(t("2026-05-01 10:00")) == t("2026-08-10 00:00")
    assert b.expires_at(t("2026-06-01 10:00")) is None
    assert b.zone == SH


def test_invalid_rules_are_refused_with_reasons():
    with pytest.raises(ValidationError, match="multiplier"):
        book({"earning": {"categories": {"x": "-1"}}})
    with pytest.raises(ValidationError):
        twice = [{"name": "A", "visits": 1, "spend": "1"}, {"name": "A", "visits": 0, "spend": "0"}]
        book({"tiers": {"levels": twice}})
    with pytest.raises(ValidationError):
        book({"earning": {"bogus": 1}})


def test_statement_adds_up_from_entries():
    def e(kind: str, points: int) -> Entry:
        return Entry(f"{kind}{points}", "c", "b", "r", kind, points, "t", "t")

    st = statement("2026-11", 100, [e("earn", 50), e("refund", -10), e("redeem", -30), e("redeem", 30),
                                    e("expire", -20), e("adjust", 5), e("debt", 7)], [])
    assert (st.opening, st.earned, st.refunded, st.redeemed, st.expired, st.adjusted, st.closing) == (
        100, 50, 10, 0, 20, 12, 132)
    assert st.closing == st.opening + st.earned - st.refunded - st.redeemed - st.expired + st.adjusted
