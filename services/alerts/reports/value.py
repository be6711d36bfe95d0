"""Customer value (issue 15, part 4): the customer pyramid, RFM quintiles and segments, lifecycle stages.

Pure functions over per-customer totals (``ValueTotals``), which the store keeps incrementally per identity
record and groups into customers at read time. Integer arithmetic throughout: money in fen, shares as exact
fractions (rounded to 4 places only for JSON). The README's "Report definitions" table states each rule.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from fractions import Fraction
from functools import cached_property
from operator import itemgetter
from typing import Any, NamedTuple, Protocol

from services.alerts.reports.value_cache import kept_for


class ValueTotals(NamedTuple):
    """One customer's purchase totals as of a day: over the period, and over all history up to that day (a tuple:
    a report builds 100,000 of them)."""

    customer_id: str
    net_minor: int  # purchases in the period less the refunds of those purchases, fen
    orders: int  # purchases in the period
    period_days: int  # distinct purchase days in the period
    days: int  # distinct purchase days up to as_of
    first_day: date  # first purchase day ever (up to as_of)
    last_day: date  # last purchase day up to as_of


# Columns of a ``ValueTotals`` row, for ``map`` over 100,000 of them (cheaper than an attribute per row).
_ID, _NET, _PERIOD_DAYS, _LAST = itemgetter(0), itemgetter(1), itemgetter(3), itemgetter(6)


def totals_of(customer_id: str, by_day: dict[str, list[int]], *, since: str) -> ValueTotals:
    """A customer's totals from its purchase days (ISO day -> [net fen, purchases]) up to as_of."""
    inside = [v for day, v in by_day.items() if day >= since]
    return ValueTotals(customer_id, sum(v[0] for v in inside), sum(v[1] for v in inside), len(inside), len(by_day),
                       date.fromisoformat(min(by_day)), date.fromisoformat(max(by_day)))


class Held(NamedTuple):
    """An order as the aggregate holds it: the (record, day) of its first purchase (None while only refunds
    came), the sum of its purchases (None: kept before refunds were capped, so they are not) and its refunds."""

    record_id: str | None
    day: str | None
    amount_minor: int | None
    refund_minor: int


NOT_HELD = Held(None, None, 0, 0)


def applied(order: Held) -> int:
    """What an order's refunds take off its day's spend: nothing before its purchase comes, and never more than
    the order's amount (KPIs cap a refund the same way)."""
    if order.day is None:
        return 0
    return order.refund_minor if order.amount_minor is None else min(order.refund_minor, order.amount_minor)


class DayDeltas(NamedTuple):
    """What a batch of new purchases adds to the per-record-and-day aggregate, whatever the adapter keeps it in."""

    spend: Counter  # (record, day) -> fen
    orders: Counter  # (record, day) -> purchases
    refund: Counter  # (record, day) -> fen of refunds the batch's purchases let count (capped)
    placed: dict[str, Held]  # order -> its new state (every order the batch's purchases name)


def day_deltas(rows: Iterable[Any], held: dict[str, Held]) -> DayDeltas:
    """The aggregate's additions for new purchases; ``held`` gives the orders already kept: refunds land on the
    day of the order's first purchase, up to the sum of the order's purchases."""
    out = DayDeltas(Counter(), Counter(), Counter(), {})
    spend, orders, placed = out.spend, out.orders, out.placed
    for r in rows:  # per purchase: kept lean, it runs for every purchase the service consumes
        key = (r.record_id, r.day)
        spend[key] += r.amount_minor
        orders[key] += 1
        o = placed.get(r.order_id) or held.get(r.order_id, NOT_HELD)
        if o.day is None:  # the order's first purchase
            placed[r.order_id] = Held(r.record_id, r.day, r.amount_minor, o.refund_minor)
        else:
            amount = o.amount_minor
            placed[r.order_id] = Held(o.record_id, o.day, None if amount is None else amount + r.amount_minor,
                                      o.refund_minor)
    for order, o in placed.items():
        # Purchases leave an order's refunds as they were: with none there is nothing to take off.
        if o.refund_minor and (taken := applied(o) - applied(held.get(order, NOT_HELD))):
            out.refund[(o.record_id, o.day)] += taken
    return out


def refund_deltas(amounts: dict[str, int], held: dict[str, Held]) -> Counter:
    """What new refunds (order -> fen) take off each (record, day) of a purchased order, within its amount."""
    out: Counter = Counter()
    for order, amount in amounts.items():
        o = held.get(order, NOT_HELD)
        if taken := applied(o._replace(refund_minor=o.refund_minor + amount)) - applied(o):
            out[(o.record_id, o.day)] += taken
    return out


# The pyramid's levels from the top, with the cumulative percent of customers each reaches down to
# (Curry's customer pyramid: top 1%, big 4%, medium 15%, small the remaining 80%).
LEVELS: tuple[tuple[str, int], ...] = (("top", 1), ("big", 5), ("medium", 20), ("small", 100))

# Named RFM segments, first match wins; every (R, F, M) in 1..5 matches exactly one (the last is a catch-all).
SEGMENTS: tuple[tuple[str, str, Callable[[int, int, int], bool]], ...] = (
    ("champions", "R >= 4 and F >= 4 and M >= 4", lambda r, f, m: r >= 4 and f >= 4 and m >= 4),
    ("loyal", "R >= 3 and F >= 4", lambda r, f, m: r >= 3 and f >= 4),
    ("promising", "R >= 4 and F <= 3", lambda r, f, m: r >= 4 and f <= 3),
    ("at_risk", "R <= 2 and F >= 3", lambda r, f, m: r <= 2 and f >= 3),
    ("hibernating", "R <= 2 and F <= 2", lambda r, f, m: r <= 2 and f <= 2),
    ("need_attention", "R = 3 and F <= 3", lambda r, f, m: True),
)

# Lifecycle stages (DOMAIN: 考察期, 形成期, 稳定期, 退化期) and the thresholds of their rules.
STAGES: tuple[tuple[str, str], ...] = (("exploration", "考察期"), ("formation", "形成期"), ("stability", "稳定期"),
                                       ("decline", "退化期"))
LAPSE_DAYS = 180  # no purchase for this long: the relationship is declining whatever the rhythm
RHYTHM_FACTOR = 2  # a repeat buyer silent for more than twice their own mean interval...
RHYTHM_MIN_DAYS = 60  # ...and at least this long is declining
STABLE_DAYS = 4  # purchase days...
STABLE_TENURE_DAYS = 365  # ...and days since the first purchase for a stable relationship


def period_start(as_of: date, months: int) -> date:
    """The first day of the ``months`` months ending on ``as_of`` (the same day-of-month ``months`` earlier,
    clamped to that month's end, plus one day): 2026-06-30 and 12 months start on 2025-07-01."""
    y, m = divmod(as_of.year * 12 + as_of.month - 1 - months, 12)
    m += 1
    back = date(y, m, min(as_of.day, calendar.monthrange(y, m)[1]))
    return back + timedelta(days=1)


def ranked(rows: Iterable[ValueTotals]) -> list[ValueTotals]:
    """Customers of the period by net spend, highest first; equal spend by customer id (ascending)."""
    # Two stable sorts (by id, then by spend reversed, which keeps equal spends in id order) cost less than
    # one over a (spend, id) key built per customer.
    order = sorted((t for t in rows if t.period_days > 0), key=itemgetter(0))
    order.sort(key=itemgetter(1), reverse=True)
    return order


def level_sizes(n: int) -> list[int]:
    """How many of ``n`` ranked customers each level holds: level k ends at ceil(n × cumulative% / 100)."""
    ends = [-(-n * pct // 100) for _, pct in LEVELS]
    return [e - s for s, e in zip([0, *ends[:-1]], ends, strict=True)]


@dataclass(frozen=True)
class Level:
    """One level of the pyramid: its customers, their net spend, and the shares of all."""

    level: str
    customers: int
    revenue_minor: int
    customer_share: Fraction
    revenue_share: Fraction | None  # None when the period's net revenue is not positive


def pyramid(rows: Iterable[ValueTotals]) -> tuple[list[Level], dict[str, str]]:
    """The pyramid's levels and each customer's level (customers with a purchase day in the period)."""
    return _levels(ranked(rows))


def _levels(order: list[ValueTotals]) -> tuple[list[Level], dict[str, str]]:
    n, total = len(order), sum(map(_NET, order))
    levels, level_of, start = [], {}, 0
    for (name, _), size in zip(LEVELS, level_sizes(n), strict=True):
        part = order[start:start + size]
        start += size
        revenue = sum(map(_NET, part))
        levels.append(Level(name, size, revenue, Fraction(size, n) if n else Fraction(0),
                            Fraction(revenue, total) if total > 0 else None))
        level_of.update(dict.fromkeys(map(_ID, part), name))
    return levels, level_of


def quintiles(values: dict[str, Any]) -> dict[str, int]:
    """Scores 1-5 where higher values are better: 1 + floor(5 × (customers with a strictly lower value) / n),
    so equal values share a score and the lowest value scores 1."""
    score = _scores(values.values())
    return {c: score[v] for c, v in values.items()}


def _scores(values: Iterable[Any]) -> dict[Any, int]:
    """Each distinct value's quintile score among ``values`` (one per customer)."""
    counts = Counter(values)
    n = sum(counts.values())
    out, seen = {}, 0
    for value in sorted(counts):
        out[value] = 1 + 5 * seen // n
        seen += counts[value]
    return out


class Rfm(NamedTuple):
    """A customer's RFM scores (5 best) and named segment."""

    r: int
    f: int
    m: int
    segment: str


def segment_of(r: int, f: int, m: int) -> str:
    """The first segment in ``SEGMENTS`` whose rule the scores meet."""
    return next(name for name, _, rule in SEGMENTS if rule(r, f, m))


# Every score triple's segment, worked out once.
_RFM = {(r, f, m): Rfm(r, f, m, segment_of(r, f, m)) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}


def rfm(rows: Iterable[ValueTotals], *, as_of: date) -> dict[str, Rfm]:
    """RFM over the period's customers: R from days since the last purchase (fewer is better), F from purchase
    days in the period, M from net spend in the period."""
    active = [t for t in rows if t.period_days > 0]
    # Fewer days since the last purchase is a later last day: rank the days themselves (as_of is the same).
    # Scores per distinct value, then one lookup per customer (no per-customer map per dimension).
    r = _scores(map(_LAST, active))
    f = _scores(map(_PERIOD_DAYS, active))
    m = _scores(map(_NET, active))
    return {t.customer_id: _RFM[(r[t.last_day], f[t.period_days], m[t.net_minor])] for t in active}


def _stage(as_of: int, first: int, last: int, days: int) -> str:
    gap, span = as_of - last, last - first
    # A repeat buyer's own rhythm: mean interval span / (days - 1); compared exactly, without dividing.
    if gap > LAPSE_DAYS or (days >= 2 and gap * (days - 1) > RHYTHM_FACTOR * span and gap >= RHYTHM_MIN_DAYS):
        return "decline"
    if days == 1:
        return "exploration"
    if days >= STABLE_DAYS and as_of - first >= STABLE_TENURE_DAYS:
        return "stability"
    return "formation"


def stage_of(t: ValueTotals, *, as_of: date) -> str:
    """The relationship's lifecycle stage as of a day, over all its purchase days up to then (README rules)."""
    return _stage(as_of.toordinal(), t.first_day.toordinal(), t.last_day.toordinal(), t.days)


class Standing(NamedTuple):
    """One customer's place: RFM scores and segment, pyramid level (None outside the period), stage."""

    customer_id: str
    net_minor: int
    rfm: Rfm | None
    level: str | None
    stage: str


@dataclass(frozen=True)
class ValueReport:
    """The customer-value report over a set of customers; each customer's standing is built when asked for."""

    as_of: date
    start: date
    customers: int  # with a purchase day in the period
    revenue_minor: int
    levels: list[Level]
    segments: dict[str, int]
    stages: dict[str, int]
    rows: list[ValueTotals]  # pyramid order first (by net spend), then customers outside the period by id
    scores: dict[str, Rfm]
    level_of: dict[str, str]
    stage_of: dict[str, str]

    def standing(self, t: ValueTotals) -> Standing:
        """One listed customer's standing."""
        c = t.customer_id
        return Standing(c, t.net_minor, self.scores.get(c), self.level_of.get(c), self.stage_of[c])

    def __len__(self) -> int:
        return len(self.rows)

    @cached_property
    def row_of(self) -> dict[str, ValueTotals]:
        """Each listed customer's row, by customer id."""
        return {t.customer_id: t for t in self.rows}

    def standings(self, offset: int = 0, limit: int | None = None) -> list[Standing]:
        """The standings of the listed customers from ``offset`` (all, or ``limit`` of them)."""
        end = None if limit is None else offset + limit
        return [self.standing(t) for t in self.rows[offset:end]]


def value_report(rows: Iterable[ValueTotals], *, as_of: date, months: int) -> ValueReport:
    """Pyramid, RFM and lifecycle of these customers (each row: a customer's totals as of ``as_of``)."""
    rows = list(rows)
    order = ranked(rows)
    levels, level_of = _levels(order)
    scores = rfm(order, as_of=as_of)
    idle = sorted((t for t in rows if t.period_days == 0), key=lambda t: t.customer_id)
    day = as_of.toordinal()
    stage = {c: _stage(day, first.toordinal(), last.toordinal(), days) for c, _, _, _, days, first, last in rows}
    segments = Counter(x.segment for x in scores.values())
    stages = Counter(stage.values())
    return ValueReport(as_of, period_start(as_of, months), len(order), sum(map(_NET, order)), levels,
                       {name: segments[name] for name, _, _ in SEGMENTS}, {name: stages[name] for name, _ in STAGES},
                       [*order, *idle], scores, level_of, stage)


def standing_among(rows: Iterable[ValueTotals], customer_id: str, *, as_of: date) -> Standing | None:
    """One customer's standing among these customers, exactly as :func:`value_report` ranks them, in one pass
    with no sort: its place in the pyramid and its RFM scores are counts of the customers ahead and below."""
    rows = rows if isinstance(rows, list) else list(rows)
    me = next((t for t in rows if t.customer_id == customer_id), None)
    if me is None:
        return None
    stage = stage_of(me, as_of=as_of)
    if me.period_days == 0:
        return Standing(customer_id, me.net_minor, None, None, stage)
    n = ahead = net_below = last_below = days_below = 0
    net, last, days = me.net_minor, me.last_day, me.period_days
    for t in rows:
        if t.period_days > 0:
            n += 1
            if t.net_minor > net or (t.net_minor == net and t.customer_id < customer_id):
                ahead += 1
            net_below += t.net_minor < net
            last_below += t.last_day < last
            days_below += t.period_days < days
    # The level whose cumulative end first passes the customer's place (empty levels end where the last did).
    end, level = 0, LEVELS[-1][0]
    for (name, _), size in zip(LEVELS, level_sizes(n), strict=True):
        end += size
        if ahead < end:
            level = name
            break
    scores = _RFM[(1 + 5 * last_below // n, 1 + 5 * days_below // n, 1 + 5 * net_below // n)]
    return Standing(customer_id, net, scores, level, stage)


class ValueReader(Protocol):
    """What the kept reports and ``standing_of`` need from a store."""

    def value_generation(self) -> int: ...
    def value_changes(self, *, after: int, upto: int) -> set[str] | None: ...
    def value_totals(self, *, since: date, until: date) -> list[ValueTotals]: ...
    def value_totals_of(self, customer_ids: list[str], *, since: date, until: date) -> list[ValueTotals]: ...
    def owners_of(self, customer_ids: list[str]) -> dict[str, str | None]: ...
    def customers_of(self, record_ids: list[str]) -> dict[str, str]: ...
    def customer_of(self, record_id: str) -> str: ...


def _kept_forward(store: ValueReader, key: Hashable, generation: int, whole: Callable[[], Any],
                  forward: Callable[[Any, set[str], dict[str, str]], Any]) -> Any:
    """What ``key`` names at ``generation``: kept; or brought forward by ``forward(old, changed ids, their
    customers now)`` from a kept older generation the store's log of changed ids reaches back to; or ``whole()``."""
    kept = kept_for(store)

    def compute() -> Any:
        old = kept.latest(key)
        changed = None if old is None else store.value_changes(after=old[0], upto=generation)
        if changed is None:
            return whole()
        return forward(old[1], changed, store.customers_of(sorted(changed)))

    return kept.get(key, generation, compute)


def _totals(store: ValueReader, *, as_of: date, months: int, generation: int) -> list[ValueTotals]:
    """Every customer's totals at ``generation``; after a write, only the customers it changed are read again."""
    since = period_start(as_of, months)

    def forward(old: list[ValueTotals], changed: set[str], now: dict[str, str]) -> list[ValueTotals]:
        # A changed id is a record or a customer: it and its customer now are read again, as the whole read
        # groups them (a record merged into another customer no longer stands for itself).
        again = changed | set(now.values())
        return [t for t in old if t.customer_id not in again] + store.value_totals_of(sorted(again), since=since,
                                                                                      until=as_of)

    return _kept_forward(store, ("totals", as_of, months), generation,
                         lambda: store.value_totals(since=since, until=as_of), forward)


def _owners(store: ValueReader, totals: list[ValueTotals], *, as_of: date, months: int,
            generation: int) -> dict[str, str | None]:
    """The owning store of every customer of ``totals`` (kept and brought forward like them)."""
    def forward(old: dict[str, str | None], changed: set[str], now: dict[str, str]) -> dict[str, str | None]:
        out = dict(old)
        out.update(store.owners_of(sorted(changed | set(now.values()))))
        return out

    return _kept_forward(store, ("owners", as_of, months), generation,
                         lambda: store.owners_of([t.customer_id for t in totals]), forward)


def report_of(store: ValueReader, *, as_of: date, months: int, scope: Hashable = None,
              keep: Callable[[str | None], bool] | None = None) -> ValueReport:
    """The report over every customer (``keep`` None) or over those whose owning store ``keep`` accepts
    (``scope`` names that choice), computed once per change of what it reads and kept (``value_cache``)."""
    kept = kept_for(store)
    generation = store.value_generation()  # before the data: see value_cache
    totals = _totals(store, as_of=as_of, months=months, generation=generation)
    if keep is None:
        return kept.get(("report", as_of, months, None), generation,
                        lambda: value_report(totals, as_of=as_of, months=months))

    def scoped() -> ValueReport:
        owners = _owners(store, totals, as_of=as_of, months=months, generation=generation)
        return value_report([t for t in totals if keep(owners.get(t.customer_id))], as_of=as_of, months=months)

    return kept.get(("report", as_of, months, scope), generation, scoped)


def standing_of(store: ValueReader, customer_id: str, as_of: date, *, months: int = 12) -> Standing | None:
    """A customer's RFM scores and segment, pyramid level and lifecycle stage as of a day, ranked among every
    customer (company-wide, the default 12-month period); None without a purchase up to ``as_of``."""
    customer_id = store.customer_of(customer_id)
    kept = kept_for(store)
    generation = store.value_generation()  # before the data: see value_cache
    report = kept.peek(("report", as_of, months, None), generation)
    if report is not None:
        t = report.row_of.get(customer_id)
        return None if t is None else report.standing(t)
    # No report kept since the last change: one pass over every customer's totals, not a whole ranking.
    return standing_among(_totals(store, as_of=as_of, months=months, generation=generation), customer_id,
                          as_of=as_of)
