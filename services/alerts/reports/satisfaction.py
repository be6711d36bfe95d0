"""Satisfaction (issue 15): NPS, CSAT and responses per store and month from ``crm.survey`` scores, the share
of loyal customers beside them, and the structured reasons staff give when they resolve churn and complaint
alerts. Pure functions over the per store-month aggregates the store keeps; exact fractions, rounded once.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

# A survey score of 0..10: promoters 9-10, passives 7-8, detractors 0-6 (NPS); satisfied 7-10 (CSAT).
PROMOTER_MIN, SATISFIED_MIN, SCORES = 9, 7, 11
TREND_MONTHS = 6  # the month asked and the five before it
LOYAL_WINDOW_MONTHS = 12  # a loyal customer bought on at least LOYAL_MIN_DAYS distinct days in this window
LOYAL_MIN_DAYS = 2  # the stores count "at least two" in their queries: change them with it
NO_STORE = ""  # how the aggregates key a survey no store can be named for (company totals only)

# The four causes of churn the material names, and "other" (with a text); for churn and complaint alerts.
REASONS = ("product_or_service_defect", "price_competition", "no_clear_difference", "novelty_or_habit", "other")
REASONED_TYPES = frozenset({"complaint", "churn_yellow", "churn_red", "churn_model"})
UNSPECIFIED = "unspecified"  # a churn or complaint alert resolved with no reason given

# ASCII digits, the whole text (``$`` alone would take a trailing newline, ``\d`` other scripts' digits).
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class SurveyScore:
    """One new survey response: the store it counts at (``NO_STORE`` if none), its local month, its score."""

    store_id: str
    month: str
    score: int


@dataclass(frozen=True)
class VisitDay:
    """A record bought at a store on a day (the loyal-customer count's fact)."""

    store_id: str
    record_id: str
    day: date


@dataclass(frozen=True)
class ReasonRow:
    """Why staff resolved a churn or complaint alert; ``reason_text`` is personal free text."""

    alert_id: str
    type: str
    store_id: str | None
    month: str
    reason: str | None  # None: resolved without a reason (reported as ``unspecified``)
    reason_text: str | None
    record_id: str | None  # the record the alert was raised for: an erasure of its customer clears the text
    resolved_at: str


def parse_month(text: str) -> tuple[int, int]:
    """``YYYY-MM`` as (year, month); ValueError otherwise."""
    m = _MONTH.fullmatch(text)
    if m is None:
        raise ValueError("month must be YYYY-MM")
    return int(m.group(1)), int(m.group(2))


def month_of(day: date) -> str:
    """The ``YYYY-MM`` of a day."""
    return f"{day.year:04d}-{day.month:02d}"


def months_back(month: str, n: int) -> list[str]:
    """The ``n`` months ending with ``month``, oldest first."""
    year, mon = parse_month(month)
    index = year * 12 + mon - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - n + 1, index + 1)]


def rounded(value: Fraction, places: int) -> float:
    """An exact fraction rounded half-even to ``places`` decimals (for JSON)."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return float(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True)
class Scores:
    """One period's survey figures: responses, promoters/passives/detractors, NPS in points, CSAT as a share."""

    responses: int
    promoters: int
    passives: int
    detractors: int
    satisfied: int

    @property
    def nps(self) -> float | None:
        """100 × (promoters − detractors) / responses, rounded half-even to 2 places; None without responses."""
        if not self.responses:
            return None
        return rounded(Fraction(100 * (self.promoters - self.detractors), self.responses), 2)

    @property
    def csat(self) -> float | None:
        """Satisfied responses (7-10) / responses, rounded half-even to 4 places; None without responses."""
        return rounded(Fraction(self.satisfied, self.responses), 4) if self.responses else None


def scores(counts: list[int]) -> Scores:
    """The figures of a month from its count of responses per score 0..10."""
    return Scores(responses=sum(counts), promoters=sum(counts[PROMOTER_MIN:]),
                  passives=sum(counts[SATISFIED_MIN:PROMOTER_MIN]), detractors=sum(counts[:SATISFIED_MIN]),
                  satisfied=sum(counts[SATISFIED_MIN:]))


@dataclass(frozen=True)
class Loyalty:
    """Customers who bought in the window, and those of them who bought on at least two distinct days."""

    customers: int
    loyal: int

    @property
    def share(self) -> float | None:
        """Loyal / customers, rounded half-even to 4 places; None without customers."""
        return rounded(Fraction(self.loyal, self.customers), 4) if self.customers else None


def day_counts(masks: dict[tuple[str, str], int]) -> dict[str, int]:
    """Each customer's distinct days from (customer, month) -> bit mask of the month's days."""
    out: dict[str, int] = defaultdict(int)
    for (customer, _), mask in masks.items():
        out[customer] += mask.bit_count()
    return dict(out)


def reason_problem(*, alert_type: str, reason: str | None, reason_text: str | None) -> tuple[str, str, str] | None:
    """Why a resolution's reason cannot be taken: (code, field, message), or None when it can."""
    if reason is None:
        if reason_text is not None:
            return "reason_required", "body.reason", "a reason_text needs a reason"
        return None
    if alert_type not in REASONED_TYPES:
        return ("reason_not_applicable", "body.reason",
                f"a reason is given for churn and complaint alerts only, not {alert_type}")
    if reason == "other" and not (reason_text or "").strip():
        return "reason_text_required", "body.reason_text", "reason 'other' needs a reason_text"
    return None
