"""The alerts service's HTTP routes: list and work alerts, scan as of a moment, rules, churn model.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, and ``DepsDep`` is
local to ``router()``, where only an annotation evaluated at definition finds it.
"""

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from services.alerts import views
from services.alerts.domain.rules import RuleType
from services.alerts.handlers import Deps, commands, satisfaction, timers
from services.alerts.schemas import (
    AlertAck,
    AlertRead,
    AlertResolve,
    AlertsExport,
    AlertsPage,
    ChurnModelRead,
    ResolutionReasonRead,
    RulesPage,
    ScanRead,
    StandingsPage,
)
from services.alerts.store import AlertQuery, sla_filter
from shared.access.audit import auditor
from shared.access.http import Reason, Reveal, check_reveal
from shared.access.visibility import Seeing
from shared.clock import Day
from shared.http.api import Caller, caller_dep, errors
from shared.http.bounds import MAX_ID, Offset
from shared.http.errors import InvalidInput, NotFound


def router(deps: Deps) -> APIRouter:
    """The alerts routes over ``deps`` (store, rules, clock, relay)."""
    r = APIRouter(prefix="/alerts")
    DepsDep = Annotated[Deps, Depends(lambda: deps)]
    audit = auditor("alerts", deps)  # entries go through the outbox to identity's audit log

    @r.get("", response_model=AlertsPage, tags=["alerts"])
    def list_alerts(deps: DepsDep, seeing: Seeing, caller: Caller = caller_dep("reader"),
                    status: Literal["open", "acknowledged", "resolved"] | None = None, type: RuleType | None = None,
                    severity: Literal["info", "yellow", "red"] | None = None,
                    store_id: str | None = Query(None, max_length=MAX_ID),
                    customer_id: str | None = Query(None, max_length=MAX_ID,
                                                    description="any id of the customer, merged-away ones too"),
                    manager: str | None = Query(None, max_length=MAX_ID),
                    sla_breached: bool | None = Query(None, description="late (or not) against the severity's SLA"),
                    offset: Offset = 0, limit: int = Query(50, ge=1, le=500), reveal: bool = Reveal,
                    reason: str | None = Reason) -> AlertsPage:
        """Alerts, newest first, filtered by status, type, severity, store, customer, manager or SLA breach;
        staff notes masked unless an admin asks ``reveal=true`` (audited)."""
        store, now, hours = deps.store, deps.clock(), deps.config.sla_hours()
        records = None
        if customer_id is not None and not seeing.company_wide \
                and not seeing.sees(commands.owner_of(customer_id, deps=deps)):
            # Outside the caller's scope: the answer for an id nobody knows (its own id, no alerts).
            return AlertsPage(items=[], total=0, offset=offset, limit=limit, customer_id=customer_id)
        if customer_id is not None:
            # The customer is the person: a merged-away id answers for its survivor, as identity's view does,
            # with the alerts of every record merged into it (those folded into the survivor's included).
            customer_id = store.customer_of(customer_id)
            records = tuple(store.records_of(customer_id))
        query = AlertQuery(status=status, type=type, severity=severity, store_id=store_id, customer_ids=records,
                           manager=manager, owned_by=seeing.stores,
                           sla=None if sla_breached is None else sla_filter(sla_breached, hours=hours, now=now))
        items, total = store.find_alerts(query, offset=offset, limit=limit)
        if check_reveal(caller, reveal):
            for cid in sorted({a.customer_id for a in items}):
                audit(caller, action="reveal.alerts", customer_id=cid, reason=reason)
        return AlertsPage(items=[views.alert_read(a, hours=hours, now=now, reveal=reveal,
                                                   admin=caller.at_least("admin")) for a in items],
                          total=total, offset=offset, limit=limit, customer_id=customer_id)

    @r.get("/rules", response_model=RulesPage, tags=["rules"])
    def list_rules(deps: DepsDep, caller: Caller = caller_dep("reader")) -> RulesPage:
        """The rules in force, with severity, owner, suggested action and parameters."""
        book = deps.rules
        return RulesPage(items=[views.rule_read(x) for x in book.current()],
                         source=book.path.name if book.path else "defaults")

    @r.post("/scan", response_model=ScanRead, tags=["operations"])
    def post_scan(deps: DepsDep, seeing: Seeing, caller: Caller = caller_dep("operator"),
                  as_of: datetime | None = Query(None, description="ISO time with zone, within the scan window around "
                                                                  "the service clock (see README); now if absent"),
                  full: bool = Query(False, description="every customer, not only the due ones")) -> ScanRead:
        """Evaluate the due customers (or all) as of a moment, as the scheduler does (company-wide keys)."""
        # A scan evaluates every store's customers and raises their alerts: not one store's to start.
        seeing.company_only("a scan")
        if as_of is not None and as_of.tzinfo is None:
            raise InvalidInput("as_of_needs_zone", "as_of needs a timezone, e.g. 2026-11-20T09:00:00+08:00")
        moment = as_of or deps.clock()
        timers.check_as_of(moment, deps=deps)
        result = timers.scan(moment, deps=deps, relay=deps.relay, full=full)
        return ScanRead(as_of=moment, full=full, customers=result.customers, chunks=result.chunks,
                        seconds=round(result.seconds, 3), counts=result.counts)

    @r.get("/churn-model", response_model=ChurnModelRead, tags=["churn model"], responses=errors(404))
    def get_model(deps: DepsDep, caller: Caller = caller_dep("reader"),
                  as_of: Day | None = Query(None, description="YYYY-MM-DD; today if absent")) -> ChurnModelRead:
        """BG/NBD parameters fitted on purchase days up to ``as_of`` (cached per date)."""
        model, fitted_at = commands.model_as_of(as_of or _today(deps), deps=deps)
        return views.model_read(model, fitted_at)

    @r.get("/churn-model/customers", response_model=StandingsPage, tags=["churn model"], responses=errors(404))
    def get_standings(deps: DepsDep, seeing: Seeing, caller: Caller = caller_dep("reader"), as_of: Day | None = None,
                      weeks: float | None = Query(None, gt=0, le=520), offset: Offset = 0,
                      limit: int = Query(50, ge=1, le=1000)) -> StandingsPage:
        """Customers ranked by probability alive (most likely lost first), with expected purchases."""
        weeks = weeks or deps.config.model_weeks
        day = as_of or _today(deps)
        model, fitted_at, rows = commands.ranked(day, deps=deps, weeks=weeks)
        rows = commands.visible_standings(rows, deps=deps, seeing=seeing)
        return StandingsPage(model=views.model_read(model, fitted_at), weeks=weeks,
                             items=[views.standing_read(s) for s in rows[offset:offset + limit]], total=len(rows),
                             offset=offset, limit=limit)

    @r.get("/churn-model/customers/{customer_id}", response_model=StandingsPage, tags=["churn model"])
    def get_standing(deps: DepsDep, customer_id: str, seeing: Seeing, caller: Caller = caller_dep("reader"),
                     as_of: Day | None = None, weeks: float | None = Query(None, gt=0, le=520)) -> StandingsPage:
        """One customer's probability alive and expected purchases in the next ``weeks`` weeks."""
        weeks = weeks or deps.config.model_weeks
        day = as_of or _today(deps)
        model, fitted_at, rows = commands.ranked(day, deps=deps, weeks=weeks, customer_id=customer_id)
        if not commands.visible_standings(rows, deps=deps, seeing=seeing):
            raise NotFound("customer_not_found", "no purchases of that customer by that date")
        return StandingsPage(model=views.model_read(model, fitted_at), weeks=weeks,
                             items=[views.standing_read(s) for s in rows], total=len(rows), offset=0, limit=1)

    @r.get("/{alert_id}", response_model=AlertRead, tags=["alerts"])
    def get_alert(deps: DepsDep, alert_id: str, seeing: Seeing, caller: Caller = caller_dep("reader"),
                  reveal: bool = Reveal, reason: str | None = Reason) -> AlertRead:
        """One alert; staff notes masked unless an admin asks ``reveal=true`` (audited)."""
        commands.visible_alert(alert_id, deps=deps, seeing=seeing)
        alert = deps.store.alert(alert_id)
        if alert is None:
            raise NotFound("alert_not_found", "no alert with that id")
        if check_reveal(caller, reveal):
            audit(caller, action="reveal.alert", customer_id=alert.customer_id, target=alert_id, reason=reason)
        return views.alert_read(alert, hours=deps.config.sla_hours(), now=deps.clock(), reveal=reveal,
                               admin=caller.at_least("admin"))

    @r.post("/{alert_id}/ack", response_model=AlertRead, tags=["alerts"])
    def post_ack(deps: DepsDep, alert_id: str, seeing: Seeing, body: AlertAck | None = None,
                 caller: Caller = caller_dep("operator"), reason: str | None = Reason) -> AlertRead:
        """Acknowledge an open alert (who and when are recorded)."""
        commands.visible_alert(alert_id, deps=deps, seeing=seeing)
        note = body.note if body else None
        done = _transition(alert_id, deps=deps, action="ack", caller=caller, note=note)
        audit(caller, action="alerts.ack", customer_id=done.customer_id, target=alert_id, reason=reason or note)
        return done

    @r.post("/{alert_id}/resolve", response_model=AlertRead, tags=["alerts"])
    def post_resolve(deps: DepsDep, alert_id: str, body: AlertResolve, seeing: Seeing,
                     caller: Caller = caller_dep("operator"), reason: str | None = Reason) -> AlertRead:
        """Resolve an alert with a note (and, for churn and complaint alerts, a reason); its rule's suppression
        window starts."""
        commands.visible_alert(alert_id, deps=deps, seeing=seeing)
        # Issue 15: with its structured reason, in the same transaction (reason_text is never audited).
        alert, outbox = satisfaction.resolve(alert_id, deps=deps, by=caller.name, note=body.note, reason=body.reason,
                                             reason_text=body.reason_text)
        deps.relay(outbox)
        done = views.alert_read(alert, hours=deps.config.sla_hours(), now=deps.clock(), reveal=False,
                                admin=caller.at_least("admin"))
        audit(caller, action="alerts.resolve", customer_id=done.customer_id, target=alert_id,
              reason=reason or body.note)
        return done

    # -- issue 12, export (H4): outside /alerts, the same path on every service ----------------
    outer = APIRouter()
    outer.include_router(r)

    @outer.get("/customers/{customer_id}/export", response_model=AlertsExport, tags=["privacy"])
    def get_export(deps: DepsDep, customer_id: str, seeing: Seeing, caller: Caller = caller_dep("admin"),
                   reason: str | None = Reason) -> AlertsExport:
        """Alerts' part of the customer's export: every alert of theirs, in any status; audited."""
        seeing.check(deps.store.customer_of(customer_id), lambda c: commands.owner_of(c, deps=deps))
        root, alerts = commands.customer_alerts(customer_id, deps=deps)
        now, hours = deps.clock(), deps.config.sla_hours()
        done = AlertsExport(customer_id=root, alerts=[views.alert_read(a, hours=hours, now=now, reveal=True)
                                                      for a in alerts],
                            resolution_reasons=[ResolutionReasonRead(**vars(x)) for x in
                                                deps.store.reasons_of(deps.store.records_of(root))])
        audit(caller, action="privacy.export", customer_id=root, reason=reason)
        return done

    return outer


def _transition(alert_id: str, *, deps: Deps, action: str, caller: Caller, note: str | None) -> AlertRead:
    alert, outbox = commands.transition(alert_id, deps=deps, action=action, by=caller.name, note=note)
    deps.relay(outbox)
    return views.alert_read(alert, hours=deps.config.sla_hours(), now=deps.clock(), reveal=False,
                           admin=caller.at_least("admin"))


def _today(deps: Deps) -> date:
    return deps.clock().astimezone(deps.zone).date()
