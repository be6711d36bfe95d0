"""A member's tier over time, from purchases, refunds and reviews, in event-time order.

* Window: ``window_months`` calendar months; during a month it is that month so far and the months
  before it; at a review (the first moment of a month) it is the complete months before it.
* Visits are distinct purchase days (store zone); spend is purchases less refunds (R capped at the
  order's amount), a refund counting from its own time.
* Upgrade as soon as a purchase makes the member meet a better tier. Downgrade only at a review that
  the member fails, and not before the review ``grace_months`` after the first failing one; meeting
  the tier again (at a review or with a purchase) clears the failure.
* A purchase earns at the tier held just before it counts.

A timeline can stop at a horizon and say what it holds there (:class:`TierState`), and a later one can
start from that state with only the purchases from the horizon on.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from services.loyalty.domain.calendar import Month, add_months, month_key, month_of, month_start
from services.loyalty.domain.holds import TierHold, holding
from services.loyalty.domain.model import Purchase, Refund, TierImport
from services.loyalty.domain.rules import RuleBook, TierRules
from shared.contract.facts import from_minor


@dataclass(frozen=True)
class TierChange:
    """One change of tier, with when and why."""

    at: datetime
    previous: str | None
    tier: str | None
    direction: str
    reason: str


@dataclass(frozen=True)
class TierState:
    """A timeline at a horizon: everything before it counted, nothing after."""

    at: datetime
    tier: str | None
    failing_since: datetime | None
    last_change: TierChange | None
    days: dict[str, list[str]]  # month -> visit days, for the months a later window can reach
    spend: dict[str, int]
    # Refunds at or after the horizon of orders bought before it: (time, source, id, month, spend taken).
    pending: list[tuple[datetime, str, str, str, int]]


@dataclass
class Timeline:
    """A member's tier history as the facts say now."""

    tier: str | None = None
    changes: list[TierChange] = field(default_factory=list)
    tier_before: dict[str, str | None] = field(default_factory=dict)  # purchase bucket -> tier held
    failing_since: datetime | None = None
    window: list[dict] = field(default_factory=list)  # the current window, month by month
    snapshot: TierState | None = None  # the state at the horizon asked for


class _Months:
    """Visit days and spend per calendar month."""

    def __init__(self) -> None:
        self.days: dict[str, set[str]] = defaultdict(set)
        self.spend: dict[str, int] = defaultdict(int)

    def totals(self, months: list[Month]) -> tuple[int, int]:
        return self.totals_of(tuple(month_key(m) for m in months))

    def totals_of(self, keys: tuple[str, ...]) -> tuple[int, int]:
        visits = spend = 0
        for key in keys:
            visits += len(self.days.get(key, ()))
            spend += self.spend.get(key, 0)
        return visits, spend


_RANKS: dict[int, tuple[TierRules, dict[str, int]]] = {}


def _rank(rules: TierRules, tier: str | None) -> int:
    """``rules.rank`` with the name -> rank table built once per rules object (it runs per purchase)."""
    held = _RANKS.get(id(rules))
    if held is None or held[0] is not rules:
        held = _RANKS[id(rules)] = (rules, {lv.name: i for i, lv in enumerate(rules.levels)})
        if len(_RANKS) > 256:
            _RANKS.clear()
    return held[1].get(tier, len(rules.levels))  # type: ignore[arg-type]


def _window(rules: TierRules, month: Month, *, review: bool) -> list[Month]:
    w = rules.window_months
    last = add_months(month, -1) if review else month
    return [add_months(last, -i) for i in range(w - 1, -1, -1)]


@lru_cache(maxsize=4096)
def _window_keys(window_months: int, month: Month) -> tuple[str, ...]:
    # A purchase's window (as ``_window`` without review) as month keys: built once per month, not per purchase.
    return tuple(month_key(add_months(month, -i)) for i in range(window_months - 1, -1, -1))


def _describe(visits: int, spend: int, months: list[Month]) -> str:
    return f"{visits} visits and {from_minor(spend):,} CNY in {month_key(months[0])}..{month_key(months[-1])}"


def timeline(purchases: list[Purchase], refunds: list[Refund], book: RuleBook, *, now: datetime,
             order_owner: dict[str, str] | None = None, start: TierState | None = None,
             snapshot_at: datetime | None = None, holds: tuple[TierHold, ...] = (),
             imports: list[TierImport] | tuple = ()) -> Timeline:
    """The tier timeline up to ``now``, from ``start`` (then the purchases are those from its horizon on)
    if given; with ``snapshot_at`` (not after ``now``), the state there is kept in ``snapshot``; ``holds``: staff
    overrides (``domain.holds``); ``imports``: tiers a member file says the member held since a moment
    (issue 14), each held until the first review after the later of that moment and the import."""
    zone = book.zone
    owner = order_owner or {}
    by_bucket = {p.bucket: p for p in purchases}
    events: list[tuple] = []
    for p in purchases:
        events.append((p.time, 1, p.source, p.id, "purchase", p))
    for r in refunds:
        bucket = owner.get(r.order_id)
        p = by_bucket.get(bucket) if bucket else None
        if p is not None:
            events.append((max(r.time, p.time), 2, r.source, r.id, "refund", (r, p)))
    # Imported tiers and staff overrides are rare: a timeline without them skips their bookkeeping (it runs once
    # per settle).
    shields: list[tuple[datetime, datetime]] = []
    if imports:
        # A checkpoint holds what an import before its horizon did; a tier these rules do not know is not held.
        imports = [i for i in imports if book.at(i.since).tiers.level(i.tier)]
        # No review from an imported tier's moment up to the import judges the member: a file saying "A since
        # 2021" imported today holds A until the first review after today. Worked out from every import, those
        # before a checkpoint's horizon too, so a timeline started from one skips the same reviews.
        shields = [(i.since, i.held_until) for i in imports if i.held_until > i.since]
        imports = [i for i in imports if start is None or i.since >= start.at]
        for i in imports:
            events.append((i.since, 1, i.source, i.id, "imported", i))
    out = Timeline()
    months = _Months()
    if start is not None:
        out.tier, out.failing_since = start.tier, start.failing_since
        out.changes = [start.last_change] if start.last_change else []
        months.days.update({m: set(days) for m, days in start.days.items()})
        months.spend.update(start.spend)
        events += [(at, 2, src, eid, "taken", (month, n)) for at, src, eid, month, n in start.pending]
        month = month_of(start.at, zone)
        if month_start(month, zone) < start.at:
            month = add_months(month, 1)  # a horizon inside a month (a settle's own): that month's review is past
    elif purchases or holds or imports:
        month = add_months(month_of(min([p.time for p in purchases] + [h.start for h in holds]
                                        + [i.since for i in imports]), zone), 1)
    else:
        if snapshot_at is not None:
            out.snapshot = TierState(snapshot_at, None, None, None, {}, {}, [])
        return out
    if holds:
        holds = tuple(h for h in holds if h.start < h.end)
        # An import a staff override outranked at its moment was never held: it shields nothing.
        shields = [(a, b) for a, b in shields if not (holds and holding(holds, a))]
        # A hold that began before the state started from is in that state already.
        events += [(h.start, 3, "", h.override_id, "hold", h) for h in holds
                   if h.start <= now and (start is None or h.start >= start.at)]
        # A hold ending while an earlier one is still in force (two customers' overrides joined by a merge) gives
        # the tier back to that one, which is in force again.
        events += [(h.end, 3, "", h.override_id, "hold_end", h) for h in holds
                   if h.end <= now and (start is None or h.end >= start.at)]
    while (begins := month_start(month, zone)) <= now:
        events.append((begins, 0, "", "", "review", month))
        month = add_months(month, 1)
    heapq.heapify(events)
    refunded: dict[str, int] = defaultdict(int)
    while events:
        if snapshot_at is not None and out.snapshot is None and events[0][0] >= snapshot_at:
            out.snapshot = _state(out, months, refunded, events, book, snapshot_at)
        at, _, _, _, what, item = heapq.heappop(events)
        rules = book.at(at).tiers
        if what == "purchase":
            p: Purchase = item
            out.tier_before[p.bucket] = out.tier
            months.days[p.day[:7]].add(p.day)
            months.spend[p.day[:7]] += p.amount_minor
            if holds and holding(holds, at):
                continue  # a staff override fixes the tier; the purchase still counts in the window
            month_now = month_of(at, zone)
            visits, spend = months.totals_of(_window_keys(rules.window_months, month_now))
            met = rules.qualifies(visits, spend)
            got, held = _rank(rules, met), _rank(rules, out.tier)
            if got < held:
                window = _window(rules, month_now, review=False)
                out.changes.append(TierChange(at, out.tier, met, "upgrade",
                                              f"met {met}: {_describe(visits, spend, window)}"))
                out.tier = met
            if got <= held:  # after an upgrade the member holds ``met``: meeting it clears a failure too
                out.failing_since = None
        elif what == "refund":
            r, p = item
            taken = min(refunded[p.bucket] + r.amount_minor, p.amount_minor) - refunded[p.bucket]
            refunded[p.bucket] += taken
            months.spend[p.day[:7]] -= taken
        elif what == "taken":
            months.spend[item[0]] -= item[1]
        elif what == "hold":
            _hold(out, rules, item, at)
        elif what == "hold_end":
            if (again := holding(holds, at)) is not None:
                _hold(out, rules, again, at)
        elif what == "imported":
            if not (holds and holding(holds, at)):  # a staff override in force outranks the member file
                _imported(out, rules, item)
        elif rules.is_review(item) and not (holds and holding(holds, at)) \
                and not any(a < at <= b for a, b in shields):
            _review(out, rules, months, item, at)
    if snapshot_at is not None and out.snapshot is None:
        out.snapshot = _state(out, months, refunded, events, book, snapshot_at)
    out.window = [{"month": key, "visits": len(months.days.get(key, ())), "spend_minor": months.spend.get(key, 0)}
                  for key in _window_keys(book.at(now).tiers.window_months, month_of(now, zone))]
    return out


def _state(out: Timeline, months: _Months, refunded: dict[str, int], events: list[tuple], book: RuleBook,
           at: datetime) -> TierState:
    # What a refund still to come takes from a month bought before the horizon depends on the refunds of
    # that order before it: worked out now, in the order the timeline would count them.
    pending, taken_so_far = [], dict(refunded)
    for when, _, src, eid, what, item in sorted(e for e in events if e[4] in ("refund", "taken")):
        if what == "taken":
            pending.append((when, src, eid, *item))
            continue
        r, p = item
        if p.time < at:
            held = taken_so_far.get(p.bucket, 0)
            n = min(held + r.amount_minor, p.amount_minor) - held
            taken_so_far[p.bucket] = held + n
            pending.append((when, src, eid, p.day[:7], n))
    reach = max(v.tiers.window_months for v in book.versions) + 1
    first = month_key(add_months(month_of(at, book.zone), -reach))
    return TierState(at, out.tier, out.failing_since, out.changes[-1] if out.changes else None,
                     {m: sorted(d) for m, d in months.days.items() if m >= first},
                     {m: n for m, n in months.spend.items() if m >= first}, pending)


def _hold(out: Timeline, rules: TierRules, hold: TierHold, at: datetime) -> None:
    if hold.tier != out.tier:
        direction = "upgrade" if _rank(rules, hold.tier) < _rank(rules, out.tier) else "downgrade"
        out.changes.append(TierChange(at, out.tier, hold.tier, direction, hold.reason()))
        out.tier = hold.tier
    out.failing_since = None  # the normal rules resume after the hold as after any change of tier


def _imported(out: Timeline, rules: TierRules, imp: TierImport) -> None:
    # The member file's word stands from its moment until the first review after the import judges the member
    # (issue 14; the reviews before it are skipped in ``timeline``).
    out.failing_since = None
    if imp.tier != out.tier:
        up = _rank(rules, imp.tier) < _rank(rules, out.tier)
        out.changes.append(TierChange(imp.since, out.tier, imp.tier, "upgrade" if up else "downgrade",
                                      f"imported: {imp.tier} held since {imp.since.isoformat()}"))
        out.tier = imp.tier


def _review(out: Timeline, rules: TierRules, months: _Months, month: Month, at: datetime) -> None:
    window = _window(rules, month, review=True)
    visits, spend = months.totals(window)
    met = rules.qualifies(visits, spend)
    held, got = _rank(rules, out.tier), _rank(rules, met)
    if got <= held:
        out.failing_since = None
        if got < held:
            out.changes.append(TierChange(at, out.tier, met, "upgrade",
                                          f"review {month_key(month)}: met {met}: {_describe(visits, spend, window)}"))
            out.tier = met
        return
    if out.failing_since is None:
        out.failing_since = at
    first_fail = month_of(out.failing_since, at.tzinfo)  # type: ignore[arg-type]
    if month >= add_months(first_fail, rules.grace_months):
        out.changes.append(TierChange(at, out.tier, met, "downgrade",
                                      f"review {month_key(month)}: {_describe(visits, spend, window)}"
                                      f" qualify for {met or 'no tier'}"))
        out.tier = met
        out.failing_since = None


_REVIEWS: dict[tuple[int, datetime], tuple[RuleBook, datetime]] = {}


def next_review(book: RuleBook, now: datetime) -> datetime:
    """The first review after ``now``."""
    # A batch settles all its customers at one moment under one book: the answer is worked out once for them.
    held = _REVIEWS.get((id(book), now))
    if held is not None and held[0] is book:
        return held[1]
    if len(_REVIEWS) > 256:
        _REVIEWS.clear()
    out = _next_review(book, now)
    _REVIEWS[(id(book), now)] = (book, out)
    return out


def _next_review(book: RuleBook, now: datetime) -> datetime:
    month = add_months(month_of(now, book.zone), 1)
    while not book.at(month_start(month, book.zone)).tiers.is_review(month):
        month = add_months(month, 1)
    return month_start(month, book.zone)
