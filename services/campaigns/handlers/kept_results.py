"""A campaign's results kept between calls, exactly (issue 16).

Measuring a campaign of 100,000 members reads every member, their enrolments, sales and touches, and takes
seconds; the console asks for the same results again and again. Per campaign and scope (``owned_by``) the
members' results, the report's sums (``domain.results.Tally``) and every customer's share of the period's sales
are kept (``shared.kept``) under the store's change generation (``store.changes``), and the report built from
them. A call at the same generation answers with the kept report; at a newer one the customers the log names
since (a changed id and the customer it belongs to now) are taken off the sums and measured again, alone: a
customer's credits depend on its own enrolments and sales only. A log that no longer reaches back, or a
restart, measures every member (the cold call).

So that the first person to open results after a restart does not pay that cold call, the worker measures, as it
starts, the whole-campaign results of every campaign a person is likely to open (``keep``: running, paused, and
completed ones whose results window ended within ``results_keep_days``), and, while someone has read results
recently, brings them forward on a timer off the batch thread.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from weakref import WeakKeyDictionary

from services.campaigns.domain.attribution import Credit, collapse, credits, outcomes
from services.campaigns.domain.definition import Definition
from services.campaigns.domain.delivery import TOUCH_SUMS, TouchState, add_touch, figures_of, states
from services.campaigns.domain.results import MemberResult, PeriodSales, Report, Tally
from services.campaigns.handlers import Deps
from services.campaigns.handlers.commands import definition_of
from services.campaigns.store import CampaignRow, MemberRow
from shared.contract.facts import epoch_ms
from shared.kept import kept_for

States = tuple[dict[str, TouchState], dict[str, TouchState]]  # first touches, follow-ups: by member id


@dataclass(frozen=True)
class Measured:
    """What one customer (now) adds to the results: its member's result, the campaign's credits of its
    purchases, and the state of its follow-up touch (None: none sent)."""

    result: MemberResult
    mine: tuple[Credit, ...]
    follow: TouchState | None


@dataclass
class Held:
    """Everything a kept report is made from, for one campaign and scope."""

    launched: dict[str, MemberRow]  # the members as launched, by member id (never changed: replaced whole)
    measured: dict[str, Measured]  # by customer now
    tally: Tally
    follow: list = field(default_factory=lambda: [0] * TOUCH_SUMS + [Counter()])  # over the measured
    followed: set[str] = field(default_factory=set)  # member ids with a follow-up touch, in the whole campaign
    period: dict[str, tuple[int, int, int]] | None = None  # each customer's share of the period's sales
    report: Report | None = None

    def __len__(self) -> int:
        return len(self.measured)

    def copy(self) -> Held:
        """A copy to bring forward (what is kept is never changed: a reader may hold it)."""
        return Held(self.launched, dict(self.measured), self.tally.copy(),
                    [*self.follow[:-1], Counter(self.follow[-1])], set(self.followed),
                    None if self.period is None else dict(self.period))

    def add(self, m: Measured, sign: int = 1) -> None:
        """Add (``sign`` 1) or take off (-1) one customer's part."""
        self.tally.add(m.result, m.mine, sign)
        if m.follow is not None:
            add_touch(self.follow, 0, m.follow, False, self.follow[-1], sign)


def touch_states(campaign_id: str, *, deps: Deps) -> States:
    """Issue 14: the state of each member's first touch and follow-up touch by their receipts, by member id
    as launched (a touch no receipt spoke of is pending)."""
    found = states(deps.store.receipts(campaign_id))
    first: dict[str, TouchState] = {}
    followed: dict[str, TouchState] = {}
    for t in deps.store.campaign_touches(campaign_id):
        (followed if t.step == "follow_up" else first)[t.customer_id] = found.get(t.touch_id, TouchState())
    return first, followed


def _touch_states_of(campaign_id: str, member_ids: Collection[str], *, deps: Deps) -> States:
    """``touch_states`` of these members only (their touches in touch-id order, as the whole read folds them)."""
    touches = sorted((t for t in deps.store.touches_of(member_ids) if t.campaign_id == campaign_id),
                     key=lambda t: t.touch_id)
    found = states(r for r in deps.store.receipts_of([t.touch_id for t in touches]) if r.campaign_id == campaign_id)
    first: dict[str, TouchState] = {}
    followed: dict[str, TouchState] = {}
    for t in touches:
        (followed if t.step == "follow_up" else first)[t.customer_id] = found.get(t.touch_id, TouchState())
    return first, followed


class _Stale(Exception):
    """An enrolment names a member the kept snapshot does not hold (renamed by an erasure): read it again."""


@dataclass(frozen=True)
class _Campaign:
    row: CampaignRow
    definition: Definition
    start: int
    end: int
    owned_by: frozenset[str] | None


def _measure(c: _Campaign, customers: Collection[str], launched: dict[str, MemberRow],
             touched: Callable[[list[str]], States], *, deps: Deps, strict: bool) -> dict[str, Measured]:
    """Measure these customers (now) against the campaign, each alone (``strict``: a member ``launched`` does
    not hold raises ``_Stale``, else it is left out, as a member that came after the snapshot was read)."""
    store, campaign_id = deps.store, c.row.id
    enrolled = store.enrolments(customers)
    units = [e for e in collapse(enrolled) if e.campaign_id == campaign_id]
    if strict and any(e.member_id not in launched for e in units):
        raise _Stale
    units = [e for e in units if e.member_id in launched]
    sales, refunds = store.sales(customers, since_ms=c.start, until_ms=c.end)
    credited = credits(enrolled, sales, refunds, deps.config.attribution)
    done = outcomes(enrolled, credited)
    mine: dict[str, list[Credit]] = defaultdict(list)
    for cr in credited:
        if cr.campaign_id == campaign_id:
            mine[cr.customer_id].append(cr)
    first, followed = touched([e.member_id for e in units])
    out = {}
    for e in units:
        m = launched[e.member_id]
        result = MemberResult(e.customer_id, e.group, m.tier, m.age_band, m.home_store, m.returning,
                              done[(campaign_id, e.customer_id)], m.purchases, m.touches_before,
                              delivery=first.get(e.member_id), followed_up=e.member_id in followed)
        out[e.customer_id] = Measured(result, tuple(mine.get(e.customer_id, ())), followed.get(e.member_id))
    return out


def _shared_launched(c: _Campaign, launched: dict[str, MemberRow], *, deps: Deps) -> dict[str, MemberRow]:
    """``launched``, or an equal dict another kept scope of the campaign holds: every store's scope reads all the
    members as launched, and a copy per scope would take 25 MB each at 82,000 members (held only while a kept
    report holds it)."""
    for key, value in kept_for(deps.store).items():
        if isinstance(value, Held) and key[:2] == ("campaign-results", c.row.id) and value.launched == launched:
            return value.launched
    return launched


def _whole(c: _Campaign, *, deps: Deps) -> Held:
    """Measure every member (the cold call)."""
    store = deps.store
    launched = _shared_launched(c, {m.member_id: m for m in store.members(c.row.id)}, deps=deps)
    customers = {m.customer_id for m in launched.values()}
    if c.owned_by is not None:
        # A customer's credits depend on its own enrolments and sales only: leaving the others out before
        # anything is counted gives every figure over exactly these members.
        owners = store.owners_of(sorted(customers))
        customers = {x for x in customers if owners.get(x) in c.owned_by}
    first, followed = touch_states(c.row.id, deps=deps)
    held = Held(launched, _measure(c, customers, launched, lambda _: (first, followed), deps=deps, strict=False),
                Tally(), followed=set(followed))
    for m in held.measured.values():
        held.add(m)
    if c.owned_by is None:
        held.period = store.period_sales_of(None, since_ms=c.start, until_ms=c.end)
    return held


def _forward(c: _Campaign, old: Held, changed: set[str], *, deps: Deps) -> Held:
    """``old`` brought forward over the ids changed since: those customers measured again, alone."""
    store, campaign_id = deps.store, c.row.id
    again = changed | set(store.current_customers(sorted(changed)).values())
    held = old.copy()
    for x in again:
        gone = held.measured.pop(x, None)
        if gone is not None:
            held.add(gone, -1)
    mine = again
    if c.owned_by is not None:
        owners = store.owners_of(sorted(again))
        mine = {x for x in again if owners.get(x) in c.owned_by}
    measured = _measure(c, mine, held.launched,
                        lambda ids: _touch_states_of(campaign_id, ids, deps=deps), deps=deps, strict=True)
    for x, m in measured.items():
        held.measured[x] = m
        held.add(m)
    # A follow-up touch is kept under its member id as launched, which the log names.
    held.followed -= changed
    held.followed |= {t.customer_id for t in store.touches_of(sorted(changed))
                      if t.campaign_id == campaign_id and t.step == "follow_up"}
    if held.period is not None:
        for x in again:
            held.period.pop(x, None)
        held.period.update(store.period_sales_of(again, since_ms=c.start, until_ms=c.end))
    return held


def _report(c: _Campaign, held: Held, *, deps: Deps) -> Held:
    definition = c.definition
    # The follow-up touches' own receipts (a mailed sample delivered), over the members measured.
    follow_up = (figures_of(held.follow, 0, held.follow[-1])
                 if definition.follow_up is not None or held.followed else None)
    if c.owned_by is not None:
        held.report = held.tally.report(costs=None, touches=None, follow_up=follow_up)
    else:
        sums = [sum(x) for x in zip(*held.period.values(), strict=True)] if held.period else [0, 0, 0]
        held.report = held.tally.report(costs=definition.costs, touches=deps.store.touch_count(c.row.id),
                                        period=PeriodSales(c.start, c.end, *sums), follow_up=follow_up)
    return held


_READ_AT: WeakKeyDictionary = WeakKeyDictionary()  # store -> time.monotonic() of the last results a person read
_READ_LOCK = threading.Lock()


def kept_report(row: CampaignRow, definition: Definition, *, deps: Deps,
                owned_by: frozenset[str] | None = None, read: bool = True) -> Report:
    """The report of a launched campaign as the store holds it now: kept, brought forward, or measured whole
    (``read``: a person asked, which keeps the timer bringing results forward)."""
    store = deps.store
    if read:
        with _READ_LOCK:
            _READ_AT[store] = time.monotonic()
    assert row.launched_at is not None
    start = epoch_ms(datetime.fromisoformat(row.launched_at))
    c = _Campaign(row, definition, start, start + definition.window_ms(), owned_by)
    held = _kept(c, store.change_generation(), deps=deps)  # the generation before the data: see shared.kept
    assert held.report is not None
    return held.report


def _kept(c: _Campaign, generation: int, *, deps: Deps) -> Held:
    """What is kept for the campaign and scope at ``generation`` (or newer), brought forward or measured."""
    store = deps.store
    kept = kept_for(store)
    key = ("campaign-results", c.row.id, c.owned_by, c.row.launched_at, c.definition.model_dump_json(),
           deps.config.attribution)

    def compute() -> Held:
        old = kept.latest(key)
        changed = None if old is None else store.changed_ids(after=old[0], upto=generation)
        if changed is not None:
            try:
                return _report(c, _forward(c, old[1], changed, deps=deps), deps=deps)
            except _Stale:
                pass
        if c.owned_by is not None:
            # Each customer is measured alone, whatever the scope: a store's members' parts of the whole
            # campaign's (kept, as the worker keeps it from the start) are exactly what the scope would measure.
            return _report(c, _scoped(c, _kept(replace(c, owned_by=None), generation, deps=deps), deps=deps),
                           deps=deps)
        return _report(c, _whole(c, deps=deps), deps=deps)

    return kept.get(key, generation, compute)


def _scoped(c: _Campaign, whole: Held, *, deps: Deps) -> Held:
    """The parts of the whole campaign's ``whole`` whose customers the scope's stores own, summed again."""
    assert c.owned_by is not None
    owners = deps.store.owners_of(sorted(whole.measured))
    held = Held(whole.launched, {x: m for x, m in whole.measured.items() if owners.get(x) in c.owned_by}, Tally(),
                followed=set(whole.followed))
    for m in held.measured.values():
        held.add(m)
    return held


def likely_opened(*, deps: Deps) -> list[CampaignRow]:
    """The launched campaigns a person is likely to open: running and paused ones, and completed ones whose
    results window (to the later of their end and the attribution window's) ended within ``results_keep_days``;
    running, then paused, then completed, each newest first."""
    store, now = deps.store, deps.clock()
    horizon = now - timedelta(days=deps.config.results_keep_days)
    rows = []
    for status in ("running", "paused", "completed"):
        for row in store.campaigns(status=status, offset=0, limit=store.campaign_count(status=status)):
            if row.launched_at is None:
                continue
            launched = datetime.fromisoformat(row.launched_at)
            window_end = launched + timedelta(milliseconds=definition_of(row).window_ms())
            if status != "completed" or max(window_end, datetime.fromisoformat(row.ends_at)) >= horizon:
                rows.append(row)
    return rows


def keep(*, deps: Deps, while_read_s: float | None = None) -> list[str]:
    """Measure (at start-up, ``while_read_s`` None) or bring forward (while a person read results within
    ``while_read_s``) the whole-campaign results of the campaigns a person is likely to open, as many as half
    of what ``shared.kept`` holds (the rest is for store-scoped readers); the ids kept current."""
    store = deps.store
    if while_read_s is not None:
        with _READ_LOCK:
            at = _READ_AT.get(store)
        if at is None or time.monotonic() - at > while_read_s:
            return []
    budget, done = kept_for(store).rows_limit // 2, []
    for row in likely_opened(deps=deps):
        budget -= store.member_count(row.id, group=None, owned_by=None)
        if budget < 0:
            break
        kept_report(row, definition_of(row), deps=deps, read=False)
        done.append(row.id)
    return done
