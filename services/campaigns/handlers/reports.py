"""Reading campaigns back: the audience, the results (and their CSV), the event-effect analysis."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.campaigns.domain import scoring
from services.campaigns.domain.audience import filter_fields, matches, profile
from services.campaigns.domain.definition import AudienceFilter
from services.campaigns.domain.delivery import DeliveryFigures
from services.campaigns.domain.effect import Effect, effect
from services.campaigns.domain.results import Report, Segment, money
from services.campaigns.handlers import Deps
from services.campaigns.handlers.commands import definition_of, get
from services.campaigns.handlers.kept_results import kept_report
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
    row = get(campaign_id, deps=deps)
    if row.launched_at is None:
        raise Conflict("not_launched", "the campaign has not launched yet; results start at launch")
    # Kept between calls and brought forward over the customers changed since (issue 16).
    return Results(row, kept_report(row, definition_of(row), deps=deps, owned_by=owned_by), owned_by)


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
