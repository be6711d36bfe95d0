"""Reading campaigns back: the audience, the results (and their CSV), the event-effect analysis."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.campaigns.domain import scoring
from services.campaigns.domain.attribution import collapse, credits, outcomes
from services.campaigns.domain.audience import filter_fields, matches, profile
from services.campaigns.domain.definition import AudienceFilter
from services.campaigns.domain.delivery import DeliveryFigures, TouchState, states
from services.campaigns.domain.delivery import figures as delivery_figures
from services.campaigns.domain.effect import Effect, effect
from services.campaigns.domain.results import MemberResult, Report, Segment, money, report
from services.campaigns.handlers import Deps
from services.campaigns.handlers.commands import definition_of, get
from services.campaigns.handlers.launch import bulk_work
from services.campaigns.store import CampaignRow, MemberRow
from shared.contract.facts import epoch_ms
from shared.http.bounds import decode_cursor, encode_cursor
from shared.http.errors import Conflict

DAY_MS = 86_400_000


def audience(campaign_id: str, *, group: str | None, after: str | None, limit: int, deps: Deps,
             owned_by: frozenset[str] | None = None) -> tuple[list[MemberRow], int, str | None]:
    """One page of members in member-id order, the total, and the cursor of the next page (``owned_by``:
    only members of customers those stores own, filtered in the store query)."""
    get(campaign_id, deps=deps)
    # Opaque like every cursor: what a client makes up is refused, not taken as a member id.
    position = decode_cursor(after, (str,))
    rows = deps.store.members(campaign_id, group=group, after=position[0] if position else None, limit=limit + 1,
                              owned_by=owned_by)
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor((rows[-1].member_id,)) if more else None
    return rows, deps.store.member_count(campaign_id, group=group, owned_by=owned_by), nxt


@dataclass(frozen=True)
class Results:
    """A campaign and its report, computed from the facts as they are now (``owned_by``: over the members
    those stores own only, None: the whole campaign)."""

    campaign: CampaignRow
    report: Report
    owned_by: frozenset[str] | None = None


def results(campaign_id: str, *, deps: Deps, owned_by: frozenset[str] | None = None) -> Results:
    """Measure a launched campaign: groups, lift, revenue, cost, ROI, breakdowns, daily series; with
    ``owned_by``, over the members whose owning store is one of those (cost, ROI, touches and the share of the
    period's sales, which belong to the whole campaign, left out)."""
    with bulk_work():
        return _results(campaign_id, deps=deps, owned_by=owned_by)


def _results(campaign_id: str, *, deps: Deps, owned_by: frozenset[str] | None = None) -> Results:
    store = deps.store
    row = get(campaign_id, deps=deps)
    if row.launched_at is None:
        raise Conflict("not_launched", "the campaign has not launched yet; results start at launch")
    definition = definition_of(row)
    snapshot = {m.member_id: m for m in store.members(campaign_id)}
    if owned_by is not None:
        # A customer's credits depend on its own enrolments and sales only: leaving the others out before
        # anything is counted gives every figure over exactly these members.
        owners = store.owners_of(sorted({m.customer_id for m in snapshot.values()}))
        snapshot = {k: m for k, m in snapshot.items() if owners.get(m.customer_id) in owned_by}
    customers = {m.customer_id for m in snapshot.values()}
    enrolled = store.enrolments(customers)
    units = [e for e in collapse(enrolled) if e.campaign_id == campaign_id and e.member_id in snapshot]
    # Only purchases inside this campaign's window can be credited to it; every member shares it.
    start = epoch_ms(datetime.fromisoformat(row.launched_at))
    end = start + definition.window_ms()
    sales, refunds = store.sales(customers, since_ms=start, until_ms=end)
    credited = credits(enrolled, sales, refunds, deps.config.attribution)
    done = outcomes(enrolled, credited)
    first, followed = touch_states(campaign_id, deps=deps)
    members = []
    for e in units:
        m = snapshot[e.member_id]
        members.append(MemberResult(e.customer_id, e.group, m.tier, m.age_band, m.home_store, m.returning,
                                    done[(campaign_id, e.customer_id)], m.purchases, m.touches_before,
                                    delivery=first.get(e.member_id), followed_up=e.member_id in followed))
    # The follow-up touches' own receipts (a mailed sample delivered), over the members measured.
    follow_up = (delivery_figures([(followed[e.member_id], False) for e in units if e.member_id in followed])
                 if definition.follow_up is not None or followed else None)
    mine = [c for c in credited if c.campaign_id == campaign_id]
    if owned_by is not None:
        return Results(row, report(members, mine, campaign_id=campaign_id, costs=None, touches=None,
                                   follow_up=follow_up), owned_by)
    return Results(row, report(members, mine, campaign_id=campaign_id, costs=definition.costs,
                               touches=store.touch_count(campaign_id),
                               period=store.period_sales(since_ms=start, until_ms=end), follow_up=follow_up))


def touch_states(campaign_id: str, *, deps: Deps) -> tuple[dict[str, TouchState], dict[str, TouchState]]:
    """Issue 14: the state of each member's first touch and follow-up touch by their receipts, by member id
    as launched (a touch no receipt spoke of is pending)."""
    found = states(deps.store.receipts(campaign_id))
    first: dict[str, TouchState] = {}
    followed: dict[str, TouchState] = {}
    for t in deps.store.campaign_touches(campaign_id):
        (followed if t.step == "follow_up" else first)[t.customer_id] = found.get(t.touch_id, TouchState())
    return first, followed


CSV_COLUMNS = ["breakdown", "segment", "group", "size", "converters", "conversion_rate", "orders", "revenue",
               "average_order_value", "absolute_lift", "lift_ci_low", "lift_ci_high", "p_value", "relative_lift",
               "incremental_revenue", "cost", "roi",
               # issue 14: the group's touches by their receipts (blank for a group without touches)
               "touches", "delivered", "failed", "opened", "replied", "delivery_rate", "failure_rate", "open_rate",
               "reply_rate", "failure_reasons", "follow_ups", "mismatched_replies"]


def _rows(breakdown: str, seg: Segment) -> Iterable[list]:
    lift = seg.lift
    for name, g in (("treatment", seg.treatment), ("control", seg.control)):
        yield [breakdown, seg.key or "all", name, g.size, g.converters, _num(g.conversion_rate), g.orders,
               money(g.revenue_minor), g.average_order_value or "",
               _num(lift.absolute if lift else None), _num(lift.ci_low if lift else None),
               _num(lift.ci_high if lift else None), _num(lift.p_value if lift else None),
               _num(lift.relative if lift else None), _blank(seg.incremental_revenue), _blank(seg.cost),
               _blank(seg.roi), *_delivery_cells(g.delivery)]


def _delivery_cells(d: DeliveryFigures | None) -> list:
    if d is None:
        return [""] * 12
    reasons = ";".join(f"{k}={n}" for k, n in d.failure_reasons.items())
    return [d.touches, d.delivered, d.failed, d.opened, d.replied, _num(d.rate(d.delivered)), _num(d.rate(d.failed)),
            _num(d.rate(d.opened)), _num(d.rate(d.replied)), reasons, d.follow_ups, d.mismatched_replies]


def _blank(value: object | None) -> object:
    return "" if value is None else value


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def results_csv(found: Results) -> str:
    """The results as CSV: one row per group of the whole campaign and of every breakdown segment."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    out.writerows(_rows("overall", found.report.overall))
    for name, segments in found.report.breakdowns.items():
        for seg in segments:
            out.writerows(_rows(name, seg))
    if found.report.follow_up is not None:  # issue 14: the follow-up touches' receipts, one row
        out.writerow(["follow_up", "all", "treatment", *[""] * (len(CSV_COLUMNS) - 3 - len(_delivery_cells(None))),
                      *_delivery_cells(found.report.follow_up)])
    return buf.getvalue()


def daily_csv(found: Results) -> str:
    """The daily series as CSV."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["day", "group", "new_converters", "returning_converters", "orders", "revenue", "new_orders",
                  "returning_orders"])
    for d in found.report.daily:
        out.writerow([d.day, d.group, d.new_converters, d.returning_converters, d.orders, money(d.revenue_minor),
                      d.new_orders, d.returning_orders])
    return buf.getvalue()


def event_effect(attendees: list[str], *, event_day: date, window_days: int, non_attendees: list[str] | None,
                 comparison: AudienceFilter | None, deps: Deps) -> Effect:
    """Attendees against non-attendees (given, or every customer matching ``comparison`` the day
    before the event), before and after the event day, with the difference in differences."""
    store = deps.store
    zone = ZoneInfo(deps.settings.timezone)
    went = set(store.current_customers(attendees).values())
    if non_attendees is not None:
        others = set(store.current_customers(non_attendees).values())
    else:
        assert comparison is not None
        eve = datetime.combine(event_day, time.min, zone)
        on = event_day - timedelta(days=1)
        facts = store.customer_facts(as_of_ms=epoch_ms(eve) - 1, fields=filter_fields(comparison),
                                     categories=comparison.categories is not None)
        scores = scoring.p_alive(facts, on) if comparison.p_alive is not None else {}
        others = {f.customer_id for f in facts if matches(comparison, profile(f, on), scores.get(f.customer_id))}
    start = datetime.combine(event_day - timedelta(days=window_days), time.min, zone)
    # A day of margin either side: purchase days are counted in each store's own timezone.
    sales, refunds = store.sales(went | others, since_ms=epoch_ms(start) - DAY_MS,
                                 until_ms=epoch_ms(start) + (2 * window_days + 2) * DAY_MS)
    return effect(went, others, sales, refunds, event_day=event_day, window_days=window_days)
