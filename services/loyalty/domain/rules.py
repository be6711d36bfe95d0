"""The rule book: earning, expiry and tier rules, in versions that take effect at a moment.

A purchase is rated by the version in effect when it happened, a lot expires by the version in
effect when it was earned, and a tier is judged by the version in effect at the moment of judgement,
so adding a version never changes the past. The default tiers are the restaurant table in DOMAIN.md.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.loyalty.domain.calendar import add_months, add_months_to_day, day_end, month_start

BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
Period = Literal["day", "month", "year"]


class _Rules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EarningRules(_Rules):
    """How purchases earn: a base rate, multipliers by category, SKU, tier and campaign, caps."""

    points_per_unit: Decimal = Decimal("1")
    unit_amount: Decimal = Decimal("1.00")
    categories: dict[str, Decimal] = Field(default_factory=dict)
    skus: dict[str, Decimal] = Field(default_factory=dict)
    tiers: dict[str, Decimal] = Field(default_factory=dict)
    caps: dict[Period, int] = Field(default_factory=dict)

    @field_validator("points_per_unit", "unit_amount")
    @classmethod
    def _positive(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or v <= 0:
            raise ValueError("must be a positive decimal")
        return v

    @field_validator("categories", "skus", "tiers")
    @classmethod
    def _multipliers(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for name, m in v.items():
            if not m.is_finite() or m < 0 or m > 100:
                raise ValueError(f"multiplier for {name} must be between 0 and 100")
        return v

    @field_validator("caps")
    @classmethod
    def _caps(cls, v: dict[str, int]) -> dict[str, int]:
        if any(limit < 0 for limit in v.values()):
            raise ValueError("caps must not be negative")
        return v

    def rate(self) -> Fraction:
        """Points per 1.00 of money, exact."""
        return _rate(self.points_per_unit, self.unit_amount)


@functools.lru_cache(maxsize=64)
def _rate(points: Decimal, unit: Decimal) -> Fraction:
    return Fraction(points) / Fraction(unit)


@functools.lru_cache(maxsize=64)
def _ranks(names: tuple[str, ...]) -> dict[str | None, int]:
    return {name: i for i, name in enumerate(names)}


class ExpiryRules(_Rules):
    """When earned points expire: N days after, at a month end or year end N months after, or never."""

    mode: Literal["days", "month_end", "year_end", "never"] = "days"
    days: int = Field(365, ge=0)
    months: int = Field(12, ge=0)
    notice_days: int = Field(30, ge=0)

    def expires_at(self, earned: datetime, zone: ZoneInfo) -> datetime | None:
        """The moment points earned at ``earned`` expire (the end of a calendar day, month or year)."""
        day: date = earned.astimezone(zone).date()
        if self.mode == "never":
            return None
        if self.mode == "days":
            return day_end(date.fromordinal(day.toordinal() + self.days), zone)
        if self.mode == "month_end":
            return month_start(add_months((day.year, day.month), self.months + 1), zone)
        later = add_months_to_day(day, self.months)
        return datetime(later.year + 1, 1, 1, tzinfo=zone)


class TierLevel(_Rules):
    """One tier: monthly averages it needs and the benefits it carries."""

    name: str = Field(min_length=1, max_length=32)
    visits: int = Field(ge=0)
    spend: Decimal = Field(ge=0)
    benefits: dict[str, Any] = Field(default_factory=dict)


def _benefits(gift: int, discount: str, calls: int, visits: int, group: str) -> dict[str, Any]:
    return {"birthday_gift_cny": gift, "best_discount": discount,
            "discount_excludes": ["drinks", "seafood", "set menus"],
            "manager_call_every_days": calls, "manager_visit_every_days": visits, "wechat_group": group}


DEFAULT_LEVELS = (
    TierLevel(name="A", visits=6, spend=Decimal("5000"), benefits=_benefits(100, "0.85", 3, 10, "VIP")),
    TierLevel(name="B", visits=4, spend=Decimal("3000"), benefits=_benefits(80, "0.88", 5, 15, "brand")),
    TierLevel(name="C", visits=2, spend=Decimal("1500"), benefits=_benefits(50, "0.90", 3, 30, "brand")),
)


class TierRules(_Rules):
    """Tiers from monthly averages over a rolling window; upgrade at once, downgrade at reviews."""

    window_months: int = Field(3, ge=1, le=24)
    review_every_months: int = Field(1, ge=1, le=12)
    # A member who fails a review keeps the tier until a review this many months after the first failing one.
    grace_months: int = Field(0, ge=0, le=24)
    levels: tuple[TierLevel, ...] = DEFAULT_LEVELS  # best first

    @model_validator(mode="after")
    def _distinct(self) -> TierRules:
        names = [lv.name for lv in self.levels]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be distinct")
        return self

    def rank(self, tier: str | None) -> int:
        """0 for the best tier; no tier (or one these rules do not know) ranks below every tier."""
        return _ranks(tuple(lv.name for lv in self.levels)).get(tier, len(self.levels))

    def level(self, tier: str | None) -> TierLevel | None:
        """The level called ``tier``."""
        return next((lv for lv in self.levels if lv.name == tier), None)

    def qualifies(self, visits: int, spend_minor: int) -> str | None:
        """The best tier whose monthly averages over the window these totals reach."""
        w = self.window_months
        for level in self.levels:
            if visits >= w * level.visits and spend_minor >= w * int(level.spend * 100):
                return level.name
        return None

    def is_review(self, month: tuple[int, int]) -> bool:
        """Whether the start of this month is a review."""
        return (month[0] * 12 + month[1] - 1) % self.review_every_months == 0


class RuleSet(_Rules):
    """One version of the rules."""

    effective_from: AwareDatetime = BEGINNING
    earning: EarningRules = EarningRules()
    expiry: ExpiryRules = ExpiryRules()
    tiers: TierRules = TierRules()


_NOT_HELD = object()
_EXPIRY_KEPT = 20_000


class RuleBook:
    """Rule versions by the moment they take effect."""

    def __init__(self, versions: list[RuleSet], zone: ZoneInfo) -> None:
        if not versions:
            raise ValueError("a rule book needs at least one version")
        self.versions = sorted(versions, key=lambda v: v.effective_from)
        self._starts = [v.effective_from for v in self.versions]
        self.zone = zone
        self._expiry: dict[datetime, datetime | None] = {}
        # Names these exact rules: what was derived with other rules (a checkpoint) is derived again.
        text = json.dumps([str(zone), *(v.model_dump(mode="json") for v in self.versions)], sort_keys=True)
        self.fingerprint = hashlib.sha256(text.encode()).hexdigest()[:16]

    def at(self, moment: datetime) -> RuleSet:
        """The version in effect at ``moment`` (the first one before any version starts)."""
        if len(self.versions) == 1:
            return self.versions[0]
        i = bisect.bisect_right(self._starts, moment) - 1
        return self.versions[max(i, 0)]

    def expires_at(self, earned: datetime) -> datetime | None:
        """When points earned at ``earned`` expire."""
        # Every settle replays the member's lots, asking again for each purchase's expiry: the answer depends
        # only on the instant and these (frozen) rules, so it is kept per book, bounded.
        held = self._expiry.get(earned, _NOT_HELD)
        if held is _NOT_HELD:
            if len(self._expiry) >= _EXPIRY_KEPT:
                self._expiry.clear()
            held = self._expiry[earned] = self.at(earned).expiry.expires_at(earned, self.zone)
        return held  # type: ignore[return-value]


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def rule_book(base: dict[str, Any], document: dict | list | None, zone: ZoneInfo) -> RuleBook:
    """A rule book from settings (``base``) and a rules document (one version, a list, or ``{"versions": []}``);
    each version's sections override the settings' ones."""
    if document is None:
        raw_versions: list = [{}]
    elif isinstance(document, list):
        raw_versions = document
    elif "versions" in document:
        raw_versions = document["versions"]
    else:
        raw_versions = [document]
    return RuleBook([RuleSet.model_validate(_merge(base, v)) for v in raw_versions], zone)


def period_key(day: str, period: Period) -> str:
    """The calendar period a purchase day (``2026-11-25``) falls in."""
    return {"day": day, "month": day[:7], "year": day[:4]}[period]


def month_range(first: tuple[int, int], count: int) -> list[tuple[int, int]]:
    """``count`` consecutive months starting at ``first``."""
    return [add_months(first, i) for i in range(count)]
