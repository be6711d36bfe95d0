"""Read models: stored campaigns, members, reports and effects turned into the API's schemas."""

from __future__ import annotations

from datetime import UTC, datetime

from services.campaigns.domain.delivery import DeliveryFigures
from services.campaigns.domain.effect import Effect, GroupEffect, Period
from services.campaigns.domain.results import GroupFigures, Report, Segment, money
from services.campaigns.handlers.reports import Results
from services.campaigns.schemas import (
    CampaignRead,
    ChangeRead,
    CostRead,
    DayRead,
    DeliveryRead,
    EventEffectRead,
    GroupEffectRead,
    GroupRead,
    LaunchRead,
    LiftRead,
    MemberRead,
    PeriodRead,
    PeriodSalesRead,
    ResultsRead,
    ResultsScopeRead,
    SegmentRead,
)
from services.campaigns.store import CampaignRow, MemberRow
from shared.clock import iso_utc

METHOD = {
    "conversion": "a member converts with a purchase (not refunded in full) inside the attribution window, "
                  "which opens at the touch (treatment) or the assignment (control)",
    "lift_interval": "Wald 95% interval for the difference of two proportions",
    "p_value": "two-sided two-proportion z-test with pooled proportion",
    "relative_lift_interval": "Katz 95% interval of the log risk ratio",
    "incremental_revenue": "treatment revenue minus control revenue scaled to the treatment's size",
    "roi": "(incremental revenue - cost) / cost; cost = fixed + per touch x touches",
    "segment_cost": "the campaign's cost shared equally by its treatment members (each got one touch)",
    "breakdowns": "segments as frozen at launch: tier, age band, home store, purchases before the launch "
                  "(0, 1, 2-4, 5+), touches counted against the contact cap (0, 1, 2, 3+)",
    "share_of_sales": "treatment (and incremental) revenue over every customer's sales net of refunds, from "
                      "the launch to the end of the attribution window",
    "delivery_rate": "touches a crm.delivery receipt reported delivered, opened or replied, over touches sent; "
                     "each touch counts once, at the highest status its receipts report (failed < delivered < "
                     "opened < replied), whatever order they arrived in; duplicates change nothing; null (not "
                     "measured) until a receipt for one of the group's touches has come",
    "failure_rate": "touches whose receipts report failed and nothing higher, over touches sent; reasons are "
                    "those of each touch's newest failed receipt, shown when a code or a common carrier reason, "
                    "else counted as other",
    "open_rate": "touches reported opened or replied, over touches sent",
    "reply_rate": "touches reported replied, over touches sent",
    "follow_up": "members whose reply to the first touch matched the follow-up step get one follow-up touch, "
                 "while the campaign runs; its receipts are counted apart, in follow_up; a reply resolved to "
                 "another customer than the touch's member sends none and counts in mismatched_replies",
}


def campaign_read(row: CampaignRow, *, whole: bool = True) -> CampaignRead:
    """A stored campaign as the API shows it; ``whole=False`` (a store-scoped reader) leaves out what
    belongs to the whole campaign and cannot be split by store: the launch figures and the costs (null), as
    the results do for such a reader."""
    definition = row.definition if whole else {**row.definition, "costs": None}
    return CampaignRead(**definition, campaign_id=row.id, status=row.status, created_at=row.created_at,
                        updated_at=row.updated_at, launched_at=row.launched_at,
                        launch=LaunchRead(**row.launch) if row.launch and whole else None,
                        paused_from=row.paused_from, last_error=row.last_error)


def member_read(row: MemberRow) -> MemberRead:
    """An audience member as the API shows it."""
    return MemberRead(member_id=row.member_id, customer_id=row.customer_id or row.member_id, group=row.group,
                      assigned_at=iso_utc(datetime.fromtimestamp(row.at_ms / 1000, UTC)), tier=row.tier,
                      age_band=row.age_band, home_store=row.home_store, returning=row.returning)


def delivery_read(d: DeliveryFigures | None) -> DeliveryRead | None:
    """A group's (or the follow-up's) delivery figures as the API shows them."""
    if d is None:
        return None
    return DeliveryRead(touches=d.touches, delivered=d.delivered, failed=d.failed, opened=d.opened, replied=d.replied,
                        pending=d.pending, delivery_rate=d.rate(d.delivered), failure_rate=d.rate(d.failed),
                        open_rate=d.rate(d.opened), reply_rate=d.rate(d.replied), failure_reasons=d.failure_reasons,
                        follow_ups=d.follow_ups, mismatched_replies=d.mismatched_replies)


def _group(g: GroupFigures) -> GroupRead:
    return GroupRead(size=g.size, converters=g.converters, conversion_rate=g.conversion_rate, orders=g.orders,
                     revenue=money(g.revenue_minor), average_order_value=g.average_order_value,
                     revenue_per_member=g.revenue_per_member, delivery=delivery_read(g.delivery))


def _segment(s: Segment) -> SegmentRead:
    lift = LiftRead(**vars(s.lift)) if s.lift else None
    return SegmentRead(segment=s.key, treatment=_group(s.treatment), control=_group(s.control), lift=lift,
                       incremental_conversions=s.incremental_conversions, incremental_revenue=s.incremental_revenue,
                       cost=s.cost, roi=s.roi)


def _period_sales(rep: Report) -> PeriodSalesRead | None:
    p = rep.period
    if p is None:
        return None

    def at(ms: int) -> str:
        return iso_utc(datetime.fromtimestamp(ms / 1000, UTC))

    return PeriodSalesRead(starts_at=at(p.starts_ms), ends_at=at(p.ends_ms), orders=p.orders,
                           sales=money(p.net_minor), refunded=money(p.refunded_minor),
                           campaign_revenue=money(rep.overall.treatment.revenue_minor),
                           share_of_sales=rep.share_of_sales, incremental_share_of_sales=rep.incremental_share_of_sales)


def results_read(found: Results, *, attribution: str) -> ResultsRead:
    """A campaign's report as the API shows it."""
    row, rep = found.campaign, found.report
    # Restricted to some stores' members: the whole campaign's launch figures and costs are left out, as its
    # cost total, touches and ROI are (and as the campaign route does for such a reader).
    whole = found.owned_by is None
    costs = row.definition["costs"] if whole else {"fixed": None, "per_touch": None}
    return ResultsRead(
        campaign_id=row.id, status=row.status, attribution=attribution,
        attribution_window_days=row.definition["attribution_window_days"], method=METHOD,
        launch=LaunchRead(**row.launch) if whole else None, overall=_segment(rep.overall),
        breakdowns={k: [_segment(s) for s in v] for k, v in rep.breakdowns.items()},
        daily=[DayRead(day=d.day, group=d.group, new_converters=d.new_converters,
                       returning_converters=d.returning_converters, orders=d.orders, revenue=money(d.revenue_minor),
                       new_orders=d.new_orders, returning_orders=d.returning_orders)
               for d in rep.daily],
        cost=CostRead(fixed=costs["fixed"], per_touch=costs["per_touch"], touches=rep.touches, total=rep.cost),
        incremental_revenue=rep.overall.incremental_revenue, roi=rep.roi, period=_period_sales(rep),
        scope=ResultsScopeRead(stores=sorted(found.owned_by)) if found.owned_by is not None else None,
        follow_up=delivery_read(rep.follow_up),
    )


def _period(p: Period) -> PeriodRead:
    return PeriodRead(customers=p.customers, buyers=p.buyers, purchases=p.purchases, spend=money(p.spend_minor),
                      spend_per_customer=p.spend_per_customer, avg_interval_days=p.avg_interval_days,
                      customers_with_interval=p.customers_with_interval)


def _effect_group(g: GroupEffect) -> GroupEffectRead:
    return GroupEffectRead(customers=g.customers, before=_period(g.before), after=_period(g.after),
                           change=ChangeRead(spend_per_customer=g.spend_change, avg_interval_days=g.interval_change))


def effect_read(found: Effect) -> EventEffectRead:
    """An event-effect analysis as the API shows it."""
    return EventEffectRead(
        event_date=found.event_day, window_days=found.window_days, attendees=_effect_group(found.attendees),
        non_attendees=_effect_group(found.non_attendees),
        difference_in_differences=ChangeRead(spend_per_customer=found.did_spend,
                                             avg_interval_days=found.did_interval_days),
    )
