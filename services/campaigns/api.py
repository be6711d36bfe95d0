"""Campaigns' HTTP routes: define, edit, move through states, launch, list the audience, measure."""

# No ``from __future__ import annotations``: FastAPI reads the routes' annotations, and ``DepsDep`` is
# local to ``router``.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Query, Response

from services.campaigns import views
from services.campaigns.handlers import Deps, commands, launch, reports, view_part
from services.campaigns.handlers.outbox import Leased, relay_leased
from services.campaigns.schemas import (
    AudiencePage,
    CampaignCreate,
    CampaignRead,
    CampaignsExport,
    CampaignsPage,
    CampaignUpdate,
    EventEffectCreate,
    EventEffectRead,
    LaunchRead,
    ResultsRead,
)
from shared.access.audit import Auditor, auditor
from shared.access.http import Reason
from shared.access.visibility import Seeing
from shared.http.api import Caller, caller_dep, errors
from shared.http.bounds import Cursor, Offset

# The CSV exports answer text/csv, and 409 before the campaign launched.
CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"}, **errors(409)}
# Issue 12: who may define, launch and measure which campaign is decided once, in ``commands`` (``runs``,
# ``may_define``, ``sees``). The event-effect analysis (over any ids given) stays company-wide.
EVENT_EFFECT = "an event-effect analysis"
Status = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
MOVES = {
    "schedule": "Schedule a draft: the service launches it at its start time.",
    "unschedule": "Take a scheduled campaign back to draft (to edit it).",
    "pause": "Hold a scheduled campaign's launch, or mark a running one paused (it still completes at its end).",
    "resume": "Resume a paused campaign where it was.",
    "complete": "Close a running or paused campaign (results keep counting its window).",
    "cancel": "Cancel; a launched campaign's bonus points are withdrawn if its window has not ended.",
}


def _relay_later(background: BackgroundTasks, deps: Deps, sent: Leased) -> None:
    """Publish after the response, a chunk at a time under the messages' lease: a launch over 100,000
    customers queues about 250,000 messages, and each chunk leaves the outbox once the broker has it."""
    if sent.outbox:
        background.add_task(relay_leased, sent, deps=deps, relay=deps.relay)


def router(deps: Deps) -> APIRouter:
    """The campaigns routes over the handlers' ``deps``."""
    r = APIRouter()
    DepsDep = Annotated[Deps, Depends(lambda: deps)]
    audit = auditor("campaigns", deps)  # entries go through the outbox to identity's audit log

    @r.post("/campaigns", response_model=CampaignRead, status_code=201, tags=["campaigns"],
            responses={200: {"model": CampaignRead, "description": "The campaign this Idempotency-Key created"}})
    def post_campaign(deps: DepsDep, response: Response, body: CampaignCreate, seeing: Seeing,
                      caller: Caller = caller_dep("operator"),
                      idempotency_key: str | None = Header(None, max_length=200)) -> CampaignRead:
        """Define a campaign (a draft); the same Idempotency-Key again returns the same campaign."""
        row, created = commands.create(body, by=caller.name, idempotency_key=idempotency_key, deps=deps,
                                       seeing=seeing)
        if not created:
            response.status_code = 200
        return views.campaign_read(row)

    @r.get("/campaigns", response_model=CampaignsPage, tags=["campaigns"])
    def list_campaigns(deps: DepsDep, seeing: Seeing, caller: Caller = caller_dep("reader"),
                       status: Status | None = None, offset: Offset = 0,
                       limit: int = Query(50, ge=1, le=500)) -> CampaignsPage:
        """Campaigns the caller sees, newest first, optionally by status."""
        rows, total = commands.listed(status=status, offset=offset, limit=limit, seeing=seeing, deps=deps)
        whole = seeing.scope.kind != "store"  # a store-scoped reader: no company-wide launch figures, no costs
        return CampaignsPage(items=[views.campaign_read(x, whole=whole) for x in rows], total=total, offset=offset,
                             limit=limit)

    @r.get("/campaigns/{campaign_id}", response_model=CampaignRead, tags=["campaigns"])
    def get_campaign(deps: DepsDep, campaign_id: str, seeing: Seeing,
                     caller: Caller = caller_dep("reader")) -> CampaignRead:
        """One campaign with its status and launch figures (a store-scoped reader: launch and costs null,
        they are the whole campaign's)."""
        return views.campaign_read(commands.get(campaign_id, deps=deps, seeing=seeing),
                                   whole=seeing.scope.kind != "store")

    @r.patch("/campaigns/{campaign_id}", response_model=CampaignRead, tags=["campaigns"])
    def patch_campaign(deps: DepsDep, campaign_id: str, body: CampaignUpdate, seeing: Seeing,
                       caller: Caller = caller_dep("operator")) -> CampaignRead:
        """Edit a draft; only the fields sent change."""
        changes = body.model_dump(mode="json", exclude_unset=True)
        return views.campaign_read(commands.edit(campaign_id, changes=changes, deps=deps, seeing=seeing))

    for action, doc in MOVES.items():
        _move_route(r, action, doc, DepsDep, audit)

    @r.post("/campaigns/{campaign_id}/launch", response_model=CampaignRead, tags=["campaigns"])
    def post_launch(deps: DepsDep, background: BackgroundTasks, campaign_id: str, seeing: Seeing,
                    caller: Caller = caller_dep("operator"), reason: str | None = Reason) -> CampaignRead:
        """Launch now: freeze the audience, split it, send treatment touches; again, it changes nothing."""
        commands.runs(campaign_id, seeing=seeing, deps=deps)
        done = launch.launch(campaign_id, deps=deps)
        _relay_later(background, deps, done.sent)
        if done.launched_now:  # launching again changes nothing: nothing to record, nothing to send
            # After the launch's own relay (tasks run in order), so its chunks keep their lease undisturbed.
            background.add_task(audit, caller, action="campaigns.launch", target=campaign_id, reason=reason)
        return views.campaign_read(done.campaign)

    @r.get("/campaigns/{campaign_id}/preview", response_model=LaunchRead, tags=["campaigns"], responses=errors(409))
    def get_preview(deps: DepsDep, campaign_id: str, seeing: Seeing,
                    caller: Caller = caller_dep("reader")) -> LaunchRead:
        """What launching now would do (audience, exclusions by reason, the split), without doing it."""
        commands.runs(campaign_id, seeing=seeing, deps=deps)
        return LaunchRead(**launch.preview(campaign_id, deps=deps))

    @r.get("/campaigns/{campaign_id}/audience", response_model=AudiencePage, tags=["results"])
    def get_audience(deps: DepsDep, campaign_id: str, seeing: Seeing, caller: Caller = caller_dep("reader"),
                     group: Literal["treatment", "control"] | None = None, cursor: Cursor = None,
                     limit: int = Query(100, ge=1, le=1000)) -> AudiencePage:
        """The frozen audience with each member's group, in pages (``cursor`` from the previous page)."""
        commands.get(campaign_id, deps=deps, seeing=seeing)
        rows, total, nxt = reports.audience(campaign_id, group=group, after=cursor, limit=limit,
                                            deps=deps, owned_by=seeing.stores)
        return AudiencePage(campaign_id=campaign_id, items=[views.member_read(m) for m in rows], total=total,
                            next_cursor=nxt)

    @r.get("/campaigns/{campaign_id}/results", response_model=ResultsRead, tags=["results"], responses=errors(409))
    def get_results(deps: DepsDep, campaign_id: str, seeing: Seeing,
                    caller: Caller = caller_dep("reader")) -> ResultsRead:
        """Measured effect: groups, lift with 95% Wald interval and z-test p-value, revenue, cost, ROI,
        breakdowns by tier, age band and home store, daily conversions by new and returning customers. A
        store-scoped key reads them over its stores' members only (``scope``), without cost, ROI, touches and
        the period's sales, which belong to the whole campaign."""
        owned_by = commands.measured_over(campaign_id, seeing=seeing, deps=deps)
        return views.results_read(reports.results(campaign_id, deps=deps, owned_by=owned_by),
                                  attribution=deps.config.attribution)

    @r.get("/campaigns/{campaign_id}/results.csv", response_class=Response, tags=["results"], responses=CSV)
    def get_results_csv(deps: DepsDep, campaign_id: str, seeing: Seeing,
                        caller: Caller = caller_dep("reader")) -> Response:
        """The results as CSV: each group of the campaign and of every breakdown segment."""
        owned_by = commands.measured_over(campaign_id, seeing=seeing, deps=deps)
        found = reports.results(campaign_id, deps=deps, owned_by=owned_by)
        return _csv(reports.results_csv(found), f"{campaign_id}-results.csv")

    @r.get("/campaigns/{campaign_id}/daily.csv", response_class=Response, tags=["results"], responses=CSV)
    def get_daily_csv(deps: DepsDep, campaign_id: str, seeing: Seeing,
                      caller: Caller = caller_dep("reader")) -> Response:
        """The daily series as CSV."""
        owned_by = commands.measured_over(campaign_id, seeing=seeing, deps=deps)
        found = reports.results(campaign_id, deps=deps, owned_by=owned_by)
        return _csv(reports.daily_csv(found), f"{campaign_id}-daily.csv")

    @r.post("/analyses/event-effect", response_model=EventEffectRead, tags=["results"])
    def post_event_effect(deps: DepsDep, body: EventEffectCreate, seeing: Seeing,
                          caller: Caller = caller_dep("reader")) -> EventEffectRead:
        """Attendees against non-attendees: spend and purchase interval before and after, and the
        difference in differences."""
        seeing.company_only(EVENT_EFFECT)
        found = reports.event_effect(body.attendees, event_day=body.event_date, window_days=body.window_days,
                                     non_attendees=body.non_attendees, comparison=body.comparison,
                                     deps=deps)
        return views.effect_read(found)

    # -- issue 12, export (H4) -------------------------------------------------------------
    @r.get("/customers/{customer_id}/export", response_model=CampaignsExport, tags=["privacy"])
    def get_export(deps: DepsDep, customer_id: str, seeing: Seeing, caller: Caller = caller_dep("admin"),
                   reason: str | None = Reason) -> CampaignsExport:
        """Campaigns' part of the customer's export: every campaign they are in, with group and conversion;
        audited."""
        survivor = deps.store.customer_of(customer_id)
        seeing.check(survivor, lambda c: deps.store.owners_of([c])[c])
        done = CampaignsExport(**view_part.export(customer_id, deps=deps))
        audit(caller, action="privacy.export", customer_id=survivor, reason=reason)
        return done

    return r


def _move_route(r: APIRouter, action: str, doc: str, DepsDep: Any, audit: Auditor) -> None:
    def move(deps: DepsDep, background: BackgroundTasks, campaign_id: str, seeing: Seeing,
             caller: Caller = caller_dep("operator"), reason: str | None = Reason) -> CampaignRead:
        row, outbox = commands.move(campaign_id, action=action, deps=deps, seeing=seeing)
        _relay_later(background, deps, outbox)
        background.add_task(audit, caller, action=f"campaigns.{action}", target=campaign_id, reason=reason)
        return views.campaign_read(row)

    move.__doc__ = doc
    r.add_api_route(f"/campaigns/{{campaign_id}}/{action}", move, methods=["POST"], response_model=CampaignRead,
                    tags=["campaigns"], name=f"post_{action}", summary=doc.split(":")[0].rstrip("."))


def _csv(text: str, filename: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
