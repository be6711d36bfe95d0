"""Issue 15, satisfaction: the glue between consumption and resolution and the satisfaction aggregates.

``keep`` runs inside ``settle``'s transaction, after the batch's facts and memberships are kept, so a
duplicate event (already filtered by ``seen_events``) never counts twice and a crash never counts half.
``resolve`` takes a resolution's structured reason with the resolution itself.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from services.alerts.domain.workflow import Alert
from services.alerts.handlers import Deps, commands
from services.alerts.reports.satisfaction import (
    NO_STORE,
    REASONED_TYPES,
    ReasonRow,
    SurveyScore,
    VisitDay,
    month_of,
    reason_problem,
)
from shared.clock import iso_utc
from shared.contract.facts import local_day
from shared.http.errors import InvalidInput, NotFound


def keep(fold: Any, *, deps: Deps) -> None:
    """Count a settled batch's new surveys and purchase days into the satisfaction aggregates."""
    store = deps.store
    visits = [VisitDay(p.store_id or NO_STORE, p.record_id, date.fromisoformat(p.day))
              for p in fold.purchases if p.record_id]
    surveys = [o for o in fold.occurrences if o.kind == "survey" and isinstance(o.value, int)]
    # A survey naming no store counts at its customer's owning store as alerts knows it now.
    unnamed = sorted({o.record_id for o in surveys if not o.store_id})
    customer = store.customers_of(unnamed) if unnamed else {}
    owners = store.owners_of(sorted(set(customer.values()))) if customer else {}
    scores = []
    for o in surveys:
        at = o.store_id or owners.get(customer.get(o.record_id, ""))
        day = local_day(datetime.fromtimestamp(o.at_ms / 1000, UTC), deps.settings.store_zone(at))
        scores.append(SurveyScore(at or NO_STORE, month_of(day), o.value))
    store.add_visit_days(visits)
    store.add_survey_scores(scores)


def resolve(alert_id: str, *, deps: Deps, by: str, note: str, reason: str | None,
            reason_text: str | None) -> tuple[Alert, list]:
    """Resolve an alert with a note and, for churn and complaint alerts, a structured reason (422 naming the
    field when it cannot be taken); a churn or complaint alert resolved without one counts as unspecified."""
    store = deps.store
    with store.transaction():
        alert = store.alert(alert_id)
        if alert is None:
            raise NotFound("alert_not_found", "no alert with that id")
        problem = reason_problem(alert_type=alert.type, reason=reason, reason_text=reason_text)
        if problem is not None:
            code, loc, message = problem
            raise InvalidInput(code, message, details=[{"loc": loc, "msg": message}])
        done, outbox = commands.transition(alert_id, deps=deps, action="resolve", by=by, note=note)
        if done.type in REASONED_TYPES and done.resolved_at is not None:
            day = local_day(done.resolved_at, deps.settings.store_zone(done.store_id))
            store.put_reason(ReasonRow(done.alert_id, done.type, done.store_id, month_of(day), reason, reason_text,
                                       done.origin_id, iso_utc(done.resolved_at)))
        return done, outbox
