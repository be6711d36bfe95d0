"""What a campaign is: its definition (validated once, here), its audience filter and its states.

The definition is what an operator writes; every rule that can be checked without data is checked
when it is written, field by field, so a 422 names the field at fault.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.clock import Moment
from shared.http.bounds import MAX_COUNT, MAX_ID
from shared.http.errors import Conflict

Channel = Literal["sms", "wechat", "email", "mail", "call"]
Objective = Literal["awareness", "product_launch", "promotion", "recruitment", "loyalty", "winback"]
AgeBand = Literal["<25", "25-34", "35-44", "45-54", "55+", "unknown"]
Status = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
Group = Literal["treatment", "control"]
AGE_BANDS: tuple[str, ...] = ("<25", "25-34", "35-44", "45-54", "55+", "unknown")
MAX_OFFER_BYTES = 4096
CENT = Decimal("0.01")
# Amounts at most what an event may carry (shared/contract/events.py MAX_MONEY): quantizing a larger one fails.
MAX_MONEY = Decimal("100000000")
MAX_NAMES = 1000
MAX_KEYWORDS = 20  # a follow-up's match: keywords only (issue 14 review: regexes could stall the consumer)
MAX_KEYWORD_CHARS = 50


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Range(_Frozen):
    """An inclusive range; either bound may be left open, not both."""

    min: Any = None
    max: Any = None

    @field_validator("max")
    @classmethod
    def _ordered(cls, value: Any, info: ValidationInfo) -> Any:
        low = info.data.get("min")
        if value is not None and low is not None and value < low:
            raise ValueError("max must not be below min")
        return value

    @model_validator(mode="after")
    def _one_bound(self) -> _Range:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        return self


class IntRange(_Range):
    """An inclusive range of whole numbers."""

    min: int | None = Field(None, ge=0, le=MAX_COUNT)
    max: int | None = Field(None, ge=0, le=MAX_COUNT)

    def holds(self, value: int | None) -> bool:
        """Whether a value lies in the range (an unknown value never does)."""
        return value is not None and (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class MoneyRange(_Range):
    """An inclusive range of amounts in CNY (exact decimals)."""

    min: Decimal | None = Field(None, ge=0, le=MAX_MONEY, decimal_places=2)
    max: Decimal | None = Field(None, ge=0, le=MAX_MONEY, decimal_places=2)

    def holds_minor(self, minor: int) -> bool:
        """Whether an amount in fen lies in the range."""
        low = None if self.min is None else int(self.min * 100)
        high = None if self.max is None else int(self.max * 100)
        return (low is None or minor >= low) and (high is None or minor <= high)


class ProbabilityRange(_Range):
    """An inclusive range of probabilities."""

    min: float | None = Field(None, ge=0, le=1)
    max: float | None = Field(None, ge=0, le=1)

    def holds(self, value: float | None) -> bool:
        """Whether a probability lies in the range (an unknown one never does)."""
        return value is not None and (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_ID)]], Field(max_length=MAX_NAMES)] | None


class AudienceFilter(_Frozen):
    """Who the campaign is for; every criterion given must hold (lists: any of their values).

    Consent for the channel and the contact cap are not criteria: they are always enforced at
    launch, and the customers they leave out are counted by reason.
    """

    tiers: Names = Field(None, min_length=1, description="loyalty tiers, e.g. ['A', 'B']")
    age_bands: list[AgeBand] | None = Field(None, min_length=1, max_length=len(AGE_BANDS))
    genders: Names = Field(None, min_length=1)
    cities: Names = Field(None, min_length=1)
    home_stores: Names = Field(None, min_length=1, description="the store with most purchase days")
    categories: Names = Field(None, min_length=1, description="bought at least one of these categories")
    recency_days: IntRange | None = Field(None, description="days since the last purchase")
    frequency: IntRange | None = Field(None, description="number of purchases")
    spend: MoneyRange | None = Field(None, description="net spend: purchases minus refunds, CNY")
    p_alive: ProbabilityRange | None = Field(None, description="BG/NBD probability the customer is still active")


def _small(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, default=str)) > MAX_OFFER_BYTES:
        raise ValueError(f"offer must stay under {MAX_OFFER_BYTES} bytes of JSON")
    return value


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(CENT)


class Costs(_Frozen):
    """What the campaign costs: a fixed part and a part per touch sent (CNY)."""

    fixed: Decimal = Field(Decimal("0.00"), ge=0, le=MAX_MONEY, decimal_places=2)
    per_touch: Decimal = Field(Decimal("0.00"), ge=0, le=MAX_MONEY, decimal_places=2)
    _two_places = field_validator("fixed", "per_touch")(_cents)


class FollowUp(_Frozen):
    """The next step for a treatment member who replied to the campaign's touch (issue 14): one more touch,
    on ``channel`` (the campaign's own when left out) with ``offer``, sent once per member."""

    on: Literal["replied"] = Field(description="what moves a member to the follow-up: a reply to the touch")
    match: str | list[str] | None = Field(
        None, description=f"only replies holding this keyword, or one of these (at most {MAX_KEYWORDS}, each "
                          f"1..{MAX_KEYWORD_CHARS} characters): literal text, case-insensitive, full-width "
                          "characters folded; no regular expressions")
    channel: Channel | None = None
    offer: dict[str, Any] = Field(default_factory=dict, description="free-form offer of the follow-up touch")

    @field_validator("match")
    @classmethod
    def _keywords(cls, value: str | list[str] | None) -> str | list[str] | None:
        words = [value] if isinstance(value, str) else value
        if words is not None:
            if not 1 <= len(words) <= MAX_KEYWORDS:
                raise ValueError(f"give 1 to {MAX_KEYWORDS} keywords")
            if any(not 1 <= len(w) <= MAX_KEYWORD_CHARS or not w.strip() for w in words):
                raise ValueError(f"each keyword must be 1 to {MAX_KEYWORD_CHARS} characters, not blank")
        return value

    _small_offer = field_validator("offer")(_small)


class Definition(_Frozen):
    """A campaign as its operator defines it."""

    name: str = Field(min_length=1, max_length=200)
    objective: Objective
    channel: Channel
    audience: AudienceFilter = Field(default_factory=AudienceFilter)
    offer: dict[str, Any] = Field(default_factory=dict, description="free-form offer the channel delivers")
    bonus_multiplier: Decimal | None = Field(None, gt=1, le=10, decimal_places=2,
                                             description="treatment earns this many times the base points")
    starts_at: Moment
    ends_at: Moment
    attribution_window_days: int = Field(14, ge=1, le=365)
    control_share: Decimal = Field(Decimal("0.10"), ge=Decimal("0.01"), le=Decimal("0.90"), decimal_places=4)
    costs: Costs = Field(default_factory=Costs)
    follow_up: FollowUp | None = None

    _two_places = field_validator("bonus_multiplier")(_cents)

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("starts_at")
        if start is not None and value <= start:
            raise ValueError("ends_at must be after starts_at")
        return value

    _small_offer = field_validator("offer")(_small)

    def window_ms(self) -> int:
        """The attribution window in milliseconds."""
        return self.attribution_window_days * 86_400_000


def confined_to(definition: Definition, stores: frozenset[str]) -> tuple[bool, list[str]]:
    """Whether the audience is confined to ``stores`` (``audience.home_stores`` given, each one of them), and
    the home stores it names outside them, sorted."""
    homes = definition.audience.home_stores or []
    outside = sorted(set(homes) - stores)
    return bool(homes) and not outside, outside


# action: (statuses it applies to, status it leads to; None = back to where the pause came from)
_ACTIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "schedule": (frozenset({"draft"}), "scheduled"),
    "unschedule": (frozenset({"scheduled"}), "draft"),
    "launch": (frozenset({"draft", "scheduled"}), "running"),
    "pause": (frozenset({"scheduled", "running"}), "paused"),
    "resume": (frozenset({"paused"}), None),
    "complete": (frozenset({"running", "paused"}), "completed"),
    "cancel": (frozenset({"draft", "scheduled", "running", "paused"}), "cancelled"),
}


def next_status(status: str, action: str, *, paused_from: str | None = None, launched: bool = False) -> str:
    """The status an action leads to, or Conflict naming what is allowed."""
    allowed, target = _ACTIONS[action]
    if status not in allowed:
        raise Conflict("invalid_transition",
                       f"cannot {action} a {status} campaign (only {', '.join(sorted(allowed))})")
    if action == "complete" and not launched:
        raise Conflict("invalid_transition", "a campaign that never launched cannot complete; cancel it instead")
    return target or paused_from or "scheduled"
