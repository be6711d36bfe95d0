"""Results of a campaign: figures per group, lift with its confidence interval, revenue, cost and ROI.

Statistics (closed form, normal quantiles from ``scipy.stats.norm``):

- absolute lift ``p_t - p_c`` with a Wald interval, ``± z * sqrt(p_t(1-p_t)/n_t + p_c(1-p_c)/n_c)``;
- p-value of the two-sided two-proportion z-test with the pooled proportion;
- relative lift ``p_t / p_c - 1`` with the Katz log risk-ratio interval (when both groups convert);
- incremental revenue ``revenue_t - revenue_c * n_t / n_c`` (the control's revenue per member scaled
  to the treatment's size); ROI ``(incremental revenue - cost) / cost``.

Money stays in integer fen until it is shown (exact ``Decimal``); rates and statistics are floats.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from services.campaigns.domain.attribution import Credit, Outcome
from services.campaigns.domain.definition import Costs

CONFIDENCE = 0.95
CENT = Decimal("0.01")
BREAKDOWNS = ("tier", "age_band", "home_store")


@dataclass(frozen=True)
class Unit:
    """One member of the campaign with the profile frozen at launch and what they did."""

    customer_id: str
    group: str
    tier: str | None
    age_band: str
    home_store: str | None
    returning: bool
    outcome: Outcome


@dataclass(frozen=True)
class GroupFigures:
    """Size, converters, credited orders and revenue of one group."""

    size: int = 0
    converters: int = 0
    orders: int = 0
    revenue_minor: int = 0

    @property
    def conversion_rate(self) -> float | None:
        """Converters over members."""
        return self.converters / self.size if self.size else None

    @property
    def average_order_value(self) -> Decimal | None:
        """Credited revenue over credited orders."""
        return money(Fraction(self.revenue_minor, self.orders)) if self.orders else None

    @property
    def revenue_per_member(self) -> Decimal | None:
        """Credited revenue over members."""
        return money(Fraction(self.revenue_minor, self.size)) if self.size else None


@dataclass(frozen=True)
class Lift:
    """Treatment against control."""

    absolute: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    relative: float | None
    relative_ci_low: float | None
    relative_ci_high: float | None


@dataclass(frozen=True)
class Segment:
    """Both groups of one segment (or of the whole campaign) and the lift between them."""

    key: str | None
    treatment: GroupFigures
    control: GroupFigures
    lift: Lift | None
    incremental_conversions: float | None
    incremental_revenue: Decimal | None


@dataclass(frozen=True)
class Day:
    """Conversions and credited orders of one group on one calendar day."""

    day: str
    group: str
    new_converters: int
    returning_converters: int
    orders: int
    revenue_minor: int


@dataclass(frozen=True)
class Report:
    """Everything the results route shows."""

    overall: Segment
    breakdowns: dict[str, list[Segment]]
    daily: list[Day]
    touches: int
    cost: Decimal
    roi: Decimal | None


def money(fen: Fraction | int) -> Decimal:
    """Fen (possibly fractional) as yuan, rounded half-even to the fen."""
    value = Fraction(fen) / 100
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(CENT, rounding=ROUND_HALF_EVEN)


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def lift(conv_t: int, n_t: int, conv_c: int, n_c: int, confidence: float = CONFIDENCE) -> Lift | None:
    """Absolute and relative lift with intervals and the z-test; None when a group is empty."""
    if n_t == 0 or n_c == 0:
        return None
    from scipy.stats import norm

    p_t, p_c = conv_t / n_t, conv_c / n_c
    diff = p_t - p_c
    q = _z(confidence)
    half = q * math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    pooled = (conv_t + conv_c) / (n_t + n_c)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    z = diff / se0 if se0 > 0 else 0.0
    p_value = float(2 * norm.sf(abs(z)))
    relative = rel_low = rel_high = None
    if conv_c > 0:
        relative = p_t / p_c - 1
        if conv_t > 0:
            se_log = math.sqrt(1 / conv_t - 1 / n_t + 1 / conv_c - 1 / n_c)
            rel_low = math.exp(math.log(p_t / p_c) - q * se_log) - 1
            rel_high = math.exp(math.log(p_t / p_c) + q * se_log) - 1
    return Lift(diff, diff - half, diff + half, z, p_value, relative, rel_low, rel_high)


def figures(units: Iterable[Unit]) -> GroupFigures:
    """The figures of a set of members."""
    size = converters = orders = revenue = 0
    for u in units:
        size += 1
        converters += u.outcome.converted
        orders += u.outcome.orders
        revenue += u.outcome.revenue_minor
    return GroupFigures(size, converters, orders, revenue)


def segment(units: list[Unit], key: str | None = None) -> Segment:
    """Treatment against control over a set of members."""
    t = figures(u for u in units if u.group == "treatment")
    c = figures(u for u in units if u.group == "control")
    found = lift(t.converters, t.size, c.converters, c.size)
    inc_conv = inc_rev = None
    if t.size and c.size:
        inc_conv = found.absolute * t.size if found else None
        inc_rev = money(t.revenue_minor - Fraction(c.revenue_minor * t.size, c.size))
    return Segment(key, t, c, found, inc_conv, inc_rev)


def _by(units: list[Unit], key: Callable[[Unit], str | None]) -> list[Segment]:
    groups: dict[str, list[Unit]] = defaultdict(list)
    for u in units:
        groups[key(u) or "unknown"].append(u)
    return [segment(groups[k], k) for k in sorted(groups)]


def daily(units: list[Unit], credited: Iterable[Credit], campaign_id: str) -> list[Day]:
    """Per day and group: members converting for the first time (new or returning customers),
    and credited orders and revenue."""
    who = {u.customer_id: u for u in units}
    cells: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for u in units:
        if u.outcome.converted and u.outcome.first_day:
            cells[(u.outcome.first_day, u.group)][1 if u.returning else 0] += 1
    for c in credited:
        u = who.get(c.customer_id)
        if c.campaign_id != campaign_id or u is None or c.net_minor <= 0:
            continue
        cell = cells[(c.sale.day, u.group)]
        cell[2] += 1
        cell[3] += c.revenue_minor
    return [Day(day, group, *cells[(day, group)]) for day, group in sorted(cells)]


def report(units: list[Unit], credited: Iterable[Credit], *, campaign_id: str, costs: Costs,
           touches: int) -> Report:
    """The campaign's results: overall, by tier, age band and home store, daily, cost and ROI."""
    overall = segment(units)
    cost = costs.fixed + costs.per_touch * touches
    roi = None
    if cost > 0 and overall.incremental_revenue is not None:
        roi = ((overall.incremental_revenue - cost) / cost).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
    return Report(
        overall=overall,
        breakdowns={
            "tier": _by(units, lambda u: u.tier),
            "age_band": _by(units, lambda u: u.age_band),
            "home_store": _by(units, lambda u: u.home_store),
        },
        daily=daily(units, credited, campaign_id),
        touches=touches,
        cost=cost.quantize(CENT),
        roi=roi,
    )
