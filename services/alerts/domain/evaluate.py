"""The rules evaluated: (customer facts, rules, as_of) -> the alerts the customer should have now,
and the next moment the answer can change without a new fact (the customer's place in the due index).

Days are calendar days in the platform's timezone; visits are distinct purchase days. Nothing here
reads a clock: ``as_of`` is given, so any moment can be evaluated, replayed and tested.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from services.alerts.domain.facts import CustomerFacts, Occurrence
from services.alerts.domain.rules import Rule, Severity
from shared.contract.facts import to_minor


@dataclass(frozen=True, slots=True)
class Trigger:
    """One occurrence or condition episode an alert answers; an alert covers each trigger once."""

    key: str
    at: datetime
    record: str | None = None  # the record an occurrence happened to (None for a condition)


@dataclass(frozen=True, slots=True)
class Desired:
    """An alert the customer should have as of the evaluation."""

    type: str
    severity: Severity
    triggers: tuple[Trigger, ...]
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Cleared:
    """Why a condition no longer holds, when the facts say more than that (points expired unredeemed)."""

    note: str
    detail: dict


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a customer's facts call for now, and when to look again."""

    desired: dict[str, Desired]
    next_check: datetime | None
    cleared: dict[str, Cleared] = field(default_factory=dict)


class _Ctx:
    """One evaluation's facts and moment; the visit windows both churn lights read are worked out once, on
    first use (plain attributes: ``functools.cached_property`` takes a lock on every read)."""

    __slots__ = ("facts", "as_of", "day", "zone", "_days", "_visits", "_window_changes")

    def __init__(self, facts: CustomerFacts, as_of: datetime, day: date, zone: ZoneInfo) -> None:
        self.facts, self.as_of, self.day, self.zone = facts, as_of, day, zone
        self._days: list[date] | None = None
        self._visits: Visits | None = None
        self._window_changes: list[datetime] | None = None

    def midnight(self, d: date) -> datetime:
        return _midnight(d, self.zone)

    @property
    def days(self) -> list[date]:
        if self._days is None:
            self._days = self.facts.visit_days(self.day)
        return self._days

    @property
    def visits(self) -> Visits:
        if self._visits is None:
            self._visits = visits(self.days, self.day, ordered=True)
        return self._visits

    @property
    def window_changes(self) -> list[datetime]:
        # A visit leaves the last-30 window 30 days later and the prior-90 window 120 days later: the next
        # change is the first visit still inside each window, moved on by the window's length.
        if self._window_changes is None:
            days, out = self.days, []
            for n in (30, 120):
                i = bisect_right(days, self.day - timedelta(days=n))
                if i < len(days):
                    out.append(self.midnight(days[i] + timedelta(days=n)))
            self._window_changes = out
        return self._window_changes

    def since_resolved(self, rule: Rule) -> str:
        """The episode of a persisting condition: everything since its last resolution is one episode."""
        last = self.facts.last_resolved.get(rule.type)
        return f"after={last.isoformat() if last else 'none'}"

    def condition(self, rule: Rule, episode: str, detail: dict) -> Desired:
        key = f"{self.facts.customer_id}|{rule.type}|{episode}"
        return Desired(rule.type, rule.severity, (Trigger(key, self.as_of),), detail)


@lru_cache(maxsize=1024)
def _midnight(d: date, zone: ZoneInfo) -> datetime:
    """The start of a day in ``zone``, as the same moment in UTC. These moments are only compared (with ``as_of``,
    in UTC, for the next check), and two times in one tzinfo compare without working out either's offset: in the
    zone, each comparison did that (a tenth of an evaluation). Few days, so each is worked out once."""
    return datetime.combine(d, time(), zone).astimezone(UTC)


Result = tuple[Desired | None, list[datetime]]


def _occurrences(rule: Rule, ctx: _Ctx, items: tuple[Occurrence, ...] | list[Occurrence]) -> Result:
    if not items:
        return None, []
    since = ctx.as_of - timedelta(days=rule.window_days)
    current = sorted((o for o in items if since <= o.at <= ctx.as_of), key=lambda o: (o.at, o.key))
    later = [o.at for o in items if o.at > ctx.as_of]  # clock skew: look again when it is due
    if not current:
        return None, later
    newest = current[-1]
    detail = {"occurrences": len(current), "last_at": newest.at.isoformat()}
    if newest.value is not None:
        detail["value"] = newest.value
    return Desired(rule.type, rule.severity, tuple(Trigger(o.key, o.at, o.record_id) for o in current), detail), later


def occurrence(rule: Rule, ctx: _Ctx) -> Result:
    """An event rule with no evaluator of its own: each occurrence of its own kind (the rule's type) is a trigger."""
    return _occurrences(rule, ctx, ctx.facts.occurred(rule.type))


def complaint(rule: Rule, ctx: _Ctx) -> Result:
    return _occurrences(rule, ctx, ctx.facts.complaints)


def survey_low(rule: Rule, ctx: _Ctx) -> Result:
    low = [s for s in ctx.facts.surveys if isinstance(s.value, int) and s.value <= int(rule.param("max_score"))]
    return _occurrences(rule, ctx, low)


def tier_upgrade(rule: Rule, ctx: _Ctx) -> Result:
    want, later = _occurrences(rule, ctx, ctx.facts.upgrades)
    if want is not None and isinstance(want.detail.get("value"), dict):
        # The newest upgrade's tier (as ``value``, like every occurrence rule) and the benefits to present.
        upgrade = want.detail["value"]
        want = replace(want, detail={**want.detail, "value": upgrade.get("tier"),
                                     "benefits": upgrade.get("benefits") or {}})
    return want, later


@dataclass(frozen=True, slots=True)
class Visits:
    """Visits in the last 30 days and in the 90 days before them, as of a day."""

    last_30: int
    prior_90: int
    # Average visits per 30-day month over the prior 90 days (worked out once: both churn lights compare it).
    monthly_average: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "monthly_average", Decimal(self.prior_90) / 3)


def visits(days: list[date], day: date, *, ordered: bool = False) -> Visits:
    """Visits in ``day-29 … day`` and in ``day-119 … day-30`` (``ordered``: ``days`` are sorted already)."""
    if not ordered:
        days = sorted(days)
    recent = bisect_left(days, day - timedelta(days=29))
    return Visits(bisect_right(days, day) - recent, recent - bisect_left(days, day - timedelta(days=119)))


@lru_cache(maxsize=256, typed=True)
def _decimal(value: object) -> Decimal:
    """A rule parameter as an exact decimal (the same few values every evaluation: worked out once each)."""
    return Decimal(str(value))


def _red(rule: Rule, ctx: _Ctx) -> Desired | None:
    days, v = ctx.days, ctx.visits
    quiet_days = int(rule.param("quiet_days"))
    if (days and (ctx.day - days[-1]).days >= quiet_days
            and v.monthly_average >= _decimal(rule.param("min_monthly_visits"))):
        return ctx.condition(rule, f"last_visit={days[-1].isoformat()}",
                             {"reason": "stopped_coming", "visits_last_30": v.last_30, "visits_prior_90": v.prior_90,
                              "last_visit": days[-1].isoformat()})
    complained = [c for c in ctx.facts.complaints if c.at <= ctx.as_of]
    if not complained or not days:
        return None
    last = max(complained, key=lambda c: (c.at, c.key))
    c_day = last.at.astimezone(ctx.zone).date()
    quiet = (ctx.day - c_day).days
    came_before = days[0] <= c_day
    came_after = any(d > c_day for d in days)
    if (came_before and not came_after and int(rule.param("stop_days")) <= quiet
            <= int(rule.param("complaint_lookback_days"))):
        return ctx.condition(rule, f"last_visit={days[-1].isoformat()}",
                             {"reason": "complained_then_stopped", "days_since_complaint": quiet,
                              "last_visit": days[-1].isoformat()})
    return None


def _complaint_changes(rule: Rule, ctx: _Ctx) -> list[datetime]:
    out = []
    for c in ctx.facts.complaints:
        c_day = c.at.astimezone(ctx.zone).date()
        for n in (int(rule.param("stop_days")), int(rule.param("complaint_lookback_days")) + 1):
            if c_day + timedelta(days=n) > ctx.day:
                out.append(ctx.midnight(c_day + timedelta(days=n)))
    return out


def churn_red(rule: Rule, ctx: _Ctx) -> Result:
    days = ctx.days
    if not days:
        # Never came (most customers an import brings): neither light can be on, and no visit window or quiet
        # spell can change that; only a complaint's own moments can.
        return None, _complaint_changes(rule, ctx)
    quiet = [ctx.midnight(days[-1] + timedelta(days=int(rule.param("quiet_days"))))] if days else []
    return _red(rule, ctx), ctx.window_changes + _complaint_changes(rule, ctx) + quiet


def churn_yellow(rule: Rule, ctx: _Ctx) -> Result:
    if not ctx.days:
        return None, []  # no visits: no drop (nothing averaged, nothing leaves a window)
    v, changes = ctx.visits, ctx.window_changes
    if v.monthly_average < _decimal(rule.param("min_monthly_visits")) or v.last_30 * 2 >= v.monthly_average:
        return None, changes
    # A persisting drop is one episode until someone resolves it; suppress_days keeps it from nagging.
    return ctx.condition(rule, ctx.since_resolved(rule),
                         {"visits_last_30": v.last_30, "visits_prior_90": v.prior_90}), changes


def churn_model(rule: Rule, ctx: _Ctx) -> Result:
    f = ctx.facts
    nxt = [ctx.midnight(ctx.day + timedelta(days=int(rule.param("recheck_days"))))] if f.purchases else []
    if f.p_alive is None or len(ctx.days) < int(rule.param("min_purchase_days")):
        return None, nxt
    if f.spend_minor(ctx.day) < to_minor(_decimal(rule.param("min_spend"))):
        return None, nxt
    if f.p_alive >= float(rule.param("p_alive_below")):
        return None, nxt
    return ctx.condition(rule, ctx.since_resolved(rule), {"p_alive": round(f.p_alive, 4)}), nxt


def _next_birthday(born: date, day: date) -> date:
    for year in (day.year, day.year + 1):
        try:
            candidate = born.replace(year=year)
        except ValueError:  # 29 February in a common year: celebrate on the 28th
            candidate = date(year, 2, 28)
        if candidate >= day:
            return candidate
    raise AssertionError("unreachable")


def birthday(rule: Rule, ctx: _Ctx) -> Result:
    born = ctx.facts.birthday
    if born is None:
        return None, []
    nxt = _next_birthday(born, ctx.day)
    ahead = int(rule.param("days_ahead"))
    until = (nxt - ctx.day).days
    if until > ahead:
        return None, [ctx.midnight(nxt - timedelta(days=ahead))]
    gifts = rule.param("gift_value")
    gift = gifts.get(ctx.facts.tier) if ctx.facts.tier else None
    # The date itself is personal data: the alert says how soon, not which day.
    desired = ctx.condition(rule, f"year={nxt.year}", {"days_until": until, "tier": ctx.facts.tier,
                                                        "gift_value": gift})
    return desired, [ctx.midnight(nxt + timedelta(days=1))]


def points_expiring(rule: Rule, ctx: _Ctx) -> Result:
    if not ctx.facts.expiries:
        return None, []  # nothing announced: nothing soon, nothing to look again for
    ahead = timedelta(days=float(rule.param("days_ahead")))
    balance = ctx.facts.balance
    live = [e for e in ctx.facts.expiries if ctx.as_of < e.expires_at]
    soon = sorted((e for e in live if e.expires_at <= ctx.as_of + ahead), key=lambda e: (e.expires_at, e.key))
    changes = [e.expires_at - ahead for e in live if e.expires_at - ahead > ctx.as_of]
    changes += [e.expires_at for e in soon]
    points = sum(e.points for e in soon)
    if balance is not None:
        points = min(points, balance)  # what was redeemed since the announcement can no longer expire
    if not soon or points <= 0:
        return None, changes
    first = soon[0]
    return (ctx.condition(rule, f"expiry={first.key}", {"points": points, "expires_at": first.expires_at.isoformat()}),
            changes)


def points_expired(rule: Rule, ctx: _Ctx) -> Cleared | None:
    """Points loyalty expired within the reminder's horizon: the reminder did not work."""
    if not ctx.facts.expired:
        return None
    since = ctx.as_of - timedelta(days=float(rule.param("days_ahead")))
    gone = sum(int(o.value or 0) for o in ctx.facts.expired if since <= o.at <= ctx.as_of)
    return Cleared(f"{gone} points expired unredeemed", {"expired_points": gone}) if gone else None


def first_purchase(rule: Rule, ctx: _Ctx) -> Result:
    if not ctx.days:
        return None, []
    first = ctx.days[0]
    start = first + timedelta(days=int(rule.param("after_days")))
    end = first + timedelta(days=int(rule.param("until_days")))
    if ctx.day < start:
        return None, [ctx.midnight(start)]
    if ctx.day >= end:
        return None, []
    # One welcome per customer: a late purchase from an earlier day moves the window, not the episode.
    desired = ctx.condition(rule, "first", {"first_purchase_day": first.isoformat()})
    return desired, [ctx.midnight(end)]


def large_balance(rule: Rule, ctx: _Ctx) -> Result:
    balance = ctx.facts.balance
    if balance is None or balance < int(rule.param("min_points")):
        return None, []
    return ctx.condition(rule, ctx.since_resolved(rule), {"points_balance": balance}), []


def cadence_due(rule: Rule, ctx: _Ctx) -> Result:
    """Account-manager calls (contact_due) and visits (visit_due): due every cadence_days of the tier after the
    last one, which is the last resolution of the rule's own alert."""
    cadence = rule.param("cadence_days").get(ctx.facts.tier or "")
    if cadence is None:
        return None, []
    last = ctx.facts.last_resolved.get(rule.type)
    if last is not None:
        due = last + timedelta(days=float(cadence))
        if ctx.as_of < due:
            return None, [due]
        return ctx.condition(rule, f"after={last.isoformat()}", {"tier": ctx.facts.tier, "cadence_days": cadence}), []
    return ctx.condition(rule, "first", {"tier": ctx.facts.tier, "cadence_days": cadence}), []


EVALUATORS: dict[str, Callable[[Rule, _Ctx], Result]] = {
    "complaint": complaint, "survey_low": survey_low, "churn_yellow": churn_yellow, "churn_red": churn_red,
    "churn_model": churn_model, "birthday": birthday, "points_expiring": points_expiring,
    "tier_upgrade": tier_upgrade, "first_purchase": first_purchase, "large_balance": large_balance,
    "contact_due": cadence_due, "visit_due": cadence_due,
}


def evaluate(facts: CustomerFacts, rules: Iterable[Rule], as_of: datetime, zone: ZoneInfo, *,
             day: date | None = None) -> Evaluation:
    """The alerts ``facts`` call for as of ``as_of``, and the next moment that can change (``day``: as_of's
    calendar day in ``zone``, when the caller evaluates many customers as of one moment)."""
    ctx = _Ctx(facts, as_of, as_of.astimezone(zone).date() if day is None else day, zone)
    desired: dict[str, Desired] = {}
    changes: list[datetime] = []
    for rule in rules:
        if not rule.enabled:
            continue
        want, later = EVALUATORS.get(rule.type, occurrence)(rule, ctx)
        changes += later
        if want is not None:
            desired[rule.type] = want
    if "churn_red" in desired:
        desired.pop("churn_yellow", None)  # one churn light: red supersedes yellow
    cleared = {}
    for rule in rules:
        if rule.enabled and rule.type == "points_expiring" and rule.type not in desired:
            if why := points_expired(rule, ctx):
                cleared[rule.type] = why
    return Evaluation(desired, min((c for c in changes if c > as_of), default=None), cleared)
