"""Results of a campaign: figures per group, lift with its confidence interval, revenue, cost and ROI.

Statistics (closed form, normal quantiles from ``scipy.stats.norm``):

- absolute lift ``p_t - p_c`` with a Wald interval, ``± z * sqrt(p_t(1-p_t)/n_t + p_c(1-p_c)/n_c)``;
- p-value of the two-sided two-proportion z-test with the pooled proportion;
- relative lift ``p_t / p_c - 1`` with the Katz log risk-ratio interval (when both groups convert);
- incremental revenue ``revenue_t - revenue_c * n_t / n_c`` (the control's revenue per member scaled
  to the treatment's size); ROI ``(incremental revenue - cost) / cost``, for the whole campaign and for
  each segment, whose cost is its treatment members' share of the campaign's (every treatment member
  got one touch and shares the fixed cost equally);
- the campaign's share of every customer's sales in its period (the launch to the end of the
  attribution window): treatment revenue, and incremental revenue, over those sales net of refunds.

Money stays in integer fen until it is shown (exact ``Decimal``); rates and statistics are floats.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from services.campaigns.domain.attribution import Credit, Outcome
from services.campaigns.domain.definition import Costs
from services.campaigns.domain.delivery import TOUCH_SUMS, DeliveryFigures, TouchState, add_touch, figures_of

CONFIDENCE = 0.95
CENT = Decimal("0.01")
RATIO = Decimal("0.0001")


@dataclass(frozen=True)
class MemberResult:
    """One member of the campaign with the profile frozen at launch and what they did."""

    customer_id: str
    group: str
    tier: str | None
    age_band: str
    home_store: str | None
    returning: bool
    outcome: Outcome
    purchases: int | None = None  # before the launch; None for members launched before it was kept
    touches_before: int | None = None
    # Issue 14: the state of the member's touch by its receipts (None: no touch, a control member), and
    # whether their reply earned the follow-up touch.
    delivery: TouchState | None = None
    followed_up: bool = False


@dataclass(frozen=True)
class GroupFigures:
    """Size, converters, credited orders and revenue of one group."""

    size: int = 0
    converters: int = 0
    orders: int = 0
    revenue_minor: int = 0
    delivery: DeliveryFigures | None = None  # None: the group got no touches (a control group)

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
    cost: Decimal | None = None  # this segment's share of the campaign's cost
    roi: Decimal | None = None


@dataclass(frozen=True)
class Day:
    """Conversions and credited orders of one group on one calendar day, by new and returning customers."""

    day: str
    group: str
    new_converters: int
    returning_converters: int
    orders: int
    revenue_minor: int
    new_orders: int = 0  # orders of members who had not bought before the launch
    returning_orders: int = 0


@dataclass(frozen=True)
class PeriodSales:
    """Every customer's purchases in the campaign's period, and what was refunded of them."""

    starts_ms: int
    ends_ms: int
    orders: int
    gross_minor: int
    refunded_minor: int

    @property
    def net_minor(self) -> int:
        """Sales net of refunds."""
        return self.gross_minor - self.refunded_minor

    @classmethod
    def summed(cls, starts_ms: int, ends_ms: int, per: Iterable[tuple[int, int, int]]) -> PeriodSales:
        """The period's sales from each customer's share (``period_sales_of``)."""
        orders = gross = refunded = 0
        for n, g, r in per:
            orders, gross, refunded = orders + n, gross + g, refunded + r
        return cls(starts_ms, ends_ms, orders, gross, refunded)


@dataclass(frozen=True)
class Report:
    """Everything the results route shows."""

    overall: Segment
    breakdowns: dict[str, list[Segment]]
    daily: list[Day]
    touches: int | None  # None (with cost): measured over some stores' members, which no cost splits to
    cost: Decimal | None
    roi: Decimal | None
    period: PeriodSales | None = None
    share_of_sales: Decimal | None = None  # treatment revenue over the period's net sales
    incremental_share_of_sales: Decimal | None = None
    follow_up: DeliveryFigures | None = None  # the follow-up touches' own receipts (None: no follow-up step)


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


_SUMS = 4 + TOUCH_SUMS  # size, converters, orders, revenue, then the touch's (``delivery.add_touch``)


def _sums() -> list:
    """Empty sums of a set of members, with their failure reasons last."""
    return [0] * _SUMS + [Counter()]


def _add_member(acc: list, u: MemberResult, sign: int = 1) -> None:
    acc[0] += sign
    outcome = u.outcome
    if outcome.converted:
        acc[1] += sign
    acc[2] += sign * outcome.orders
    acc[3] += sign * outcome.revenue_minor
    if u.delivery is not None:
        add_touch(acc, 4, u.delivery, u.followed_up, acc[_SUMS], sign)


def _merge(into: list, acc: list) -> None:
    for i in range(_SUMS):
        into[i] += acc[i]
    if acc[_SUMS]:
        into[_SUMS].update(acc[_SUMS])


def _figures(acc: list) -> GroupFigures:
    return GroupFigures(*acc[:4], figures_of(acc, 4, acc[_SUMS]) if acc[4] else None)


def figures(units: Iterable[MemberResult]) -> GroupFigures:
    """The figures of a set of members."""
    acc = _sums()
    for u in units:
        _add_member(acc, u)
    return _figures(acc)


def ratio(part: Fraction | int, whole: Fraction | int) -> Decimal:
    """A ratio to four places, rounded half-even."""
    value = Fraction(part) / Fraction(whole)
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(RATIO, rounding=ROUND_HALF_EVEN)


def segment(units: list[MemberResult], key: str | None = None, *, cost_per_treated: Fraction | None = None) -> Segment:
    """Treatment against control over a set of members; cost and ROI when the treatment's cost is given."""
    return _segment(figures(u for u in units if u.group == "treatment"),
                    figures(u for u in units if u.group == "control"), key, cost_per_treated)


def _segment(t: GroupFigures, c: GroupFigures, key: str | None, cost_per_treated: Fraction | None) -> Segment:
    found = lift(t.converters, t.size, c.converters, c.size)
    inc_conv = inc_rev = cost = roi = None
    exact = None
    if t.size and c.size:
        inc_conv = found.absolute * t.size if found else None
        exact = t.revenue_minor - Fraction(c.revenue_minor * t.size, c.size)
        inc_rev = money(exact)
    if cost_per_treated is not None:
        spent = cost_per_treated * t.size
        cost = money(spent)
        if spent > 0 and exact is not None:
            roi = ratio(exact - spent, spent)
    return Segment(key, t, c, found, inc_conv, inc_rev, cost, roi)


def purchase_band(purchases: int | None) -> str | None:
    """The purchase-history segment: how many purchases a member had made before the launch."""
    if purchases is None:
        return None
    return "0" if purchases == 0 else "1" if purchases == 1 else "2-4" if purchases <= 4 else "5+"


def touch_band(touches: int | None) -> str | None:
    """The contact-history segment: touches counted against the contact cap at the launch."""
    if touches is None:
        return None
    return str(touches) if touches < 3 else "3+"


BY: dict[str, Callable[[MemberResult], str | None]] = {
    "tier": lambda u: u.tier,
    "age_band": lambda u: u.age_band,
    "home_store": lambda u: u.home_store,
    "purchases_before": lambda u: purchase_band(u.purchases),
    "touches_before": lambda u: touch_band(u.touches_before),
}


class Tally:
    """What a report sums, kept so that members can be added and taken off one at a time (issue 16): per cell
    of members alike in group and in every breakdown's segment, their figures; per day and group, conversions
    and credited orders. A report folds the cells into segments, one pass over far fewer cells than members."""

    def __init__(self) -> None:
        self.cells: dict[tuple, list] = {}  # (group, tier, age band, home store, purchase band, touch band)
        # (day, group) -> new converters, returning converters, orders, revenue, new orders, returning orders
        self.days: dict[tuple[str, str], list[int]] = {}

    def copy(self) -> Tally:
        """An independent copy (a kept tally is never changed: a newer one is made from a copy)."""
        out = Tally()
        out.cells = {k: [*v[:_SUMS], Counter(v[_SUMS])] for k, v in self.cells.items()}
        out.days = {k: list(v) for k, v in self.days.items()}
        return out

    def add(self, u: MemberResult, mine: Iterable[Credit], sign: int = 1) -> None:
        """Add (``sign`` 1) or take off (-1) a member with the campaign's credits of its customer (``mine``)."""
        key = (u.group, u.tier, u.age_band, u.home_store, purchase_band(u.purchases), touch_band(u.touches_before))
        acc = self.cells.get(key)
        if acc is None:
            acc = self.cells[key] = _sums()
        _add_member(acc, u, sign)
        if not acc[0]:
            del self.cells[key]
        if u.outcome.converted and u.outcome.first_day:
            self._day(u.outcome.first_day, u.group)[1 if u.returning else 0] += sign
        for c in mine:
            if c.net_minor <= 0:
                continue
            cell = self._day(c.sale.day, u.group)
            cell[2] += sign
            cell[3] += sign * c.revenue_minor
            cell[5 if u.returning else 4] += sign
        if sign < 0:  # a day left with nothing on it is not shown, as if it had never been added
            for k in [k for k, v in self.days.items() if not any(v)]:
                del self.days[k]

    def _day(self, day: str, group: str) -> list[int]:
        cell = self.days.get((day, group))
        if cell is None:
            cell = self.days[(day, group)] = [0] * 6
        return cell

    def report(self, *, costs: Costs | None, touches: int | None, period: PeriodSales | None = None,
               follow_up: DeliveryFigures | None = None) -> Report:
        """The report over the members added (see :func:`report`)."""
        overall = {"treatment": _sums(), "control": _sums()}
        parts: list[dict[str, dict[str, list]]] = [{} for _ in BY]
        for (group, *keys), acc in self.cells.items():
            _merge(overall.setdefault(group, _sums()), acc)
            for part, k in zip(parts, keys, strict=True):
                _merge(part.setdefault(k or "unknown", {}).setdefault(group, _sums()), acc)
        cost = costs.fixed + costs.per_touch * touches if costs is not None and touches is not None else None
        treated = overall["treatment"][0]
        per_treated = Fraction(cost) * 100 / treated if treated and cost is not None else None
        both = _segment(_figures(overall["treatment"]), _figures(overall["control"]), None, per_treated)
        share = inc_share = None
        if period is not None and period.net_minor > 0:
            share = ratio(both.treatment.revenue_minor, period.net_minor)
            if both.incremental_revenue is not None:
                inc_share = ratio(Fraction(both.incremental_revenue) * 100, period.net_minor)
        empty = GroupFigures()
        return Report(
            overall=both,
            breakdowns={name: [_segment(_figures(g["treatment"]) if "treatment" in g else empty,
                                        _figures(g["control"]) if "control" in g else empty, k, per_treated)
                               for k, g in sorted(part.items())] for name, part in zip(BY, parts, strict=True)},
            daily=[Day(day, group, *self.days[(day, group)]) for day, group in sorted(self.days)],
            touches=touches,
            cost=cost.quantize(CENT) if cost is not None else None,
            roi=both.roi,
            period=period,
            share_of_sales=share,
            incremental_share_of_sales=inc_share,
            follow_up=follow_up,
        )


def report(units: list[MemberResult], credited: Iterable[Credit], *, campaign_id: str, costs: Costs | None,
           touches: int | None, period: PeriodSales | None = None, follow_up: DeliveryFigures | None = None) -> Report:
    """The campaign's results: overall and by segment (with cost and ROI), daily, its share of the period's sales.

    Daily: per day and group, members converting for the first time, and credited orders and revenue, by new
    customers (no purchase before the launch) and returning ones. Without ``costs`` (results over some stores'
    members only) cost and ROI are None everywhere: the fixed cost and the touches belong to the whole campaign
    and no share of them is any store's."""
    mine: dict[str, list[Credit]] = defaultdict(list)
    for c in credited:
        if c.campaign_id == campaign_id:
            mine[c.customer_id].append(c)
    tally = Tally()
    for u in units:
        tally.add(u, mine.get(u.customer_id, ()))
    return tally.report(costs=costs, touches=touches, period=period, follow_up=follow_up)
