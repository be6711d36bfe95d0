"""The use cases behind the HTTP routes: acknowledge and resolve alerts; the churn model and its ranking."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date

from services.alerts.domain.model import Standing, standings
from services.alerts.domain.workflow import Alert, WorkflowError, acknowledge, resolve
from services.alerts.handlers import Deps
from services.alerts.handlers.evaluation import Writer
from shared.access.visibility import Visibility
from shared.churn import ChurnModel, History, NoConvergence, NotEnoughData, fit_converging, histories
from shared.clock import EARLIEST, iso_utc
from shared.http.errors import Conflict, InvalidInput, NotFound, Unavailable


def transition(alert_id: str, *, deps: Deps, action: str, by: str, note: str | None) -> tuple[Alert, list]:
    """Acknowledge or resolve an alert as the caller ``by``; returns it and the outbox to relay."""
    store = deps.store
    with store.transaction():
        alert = store.alert(alert_id)
        if alert is None:
            raise NotFound("alert_not_found", "no alert with that id")
        now = deps.clock()
        try:
            change = (acknowledge if action == "ack" else resolve)(alert, by=by, note=note, at=now)
        except WorkflowError as exc:
            raise Conflict(exc.code, str(exc)) from None
        if change is None:
            return alert, []
        writer = Writer(deps, now)
        writer.write([change])
        # A resolution may end a contact cycle or start a suppression window: look again.
        writer.evaluate([alert.customer_id] if store.customer_of(alert.customer_id) == alert.customer_id else [])
        outbox = store.outbox_add(writer.outbox())
        return store.alert(alert_id) or change.alert, outbox


def fit_model(as_of: date, *, deps: Deps, days: Mapping[str, Iterable[date]] | None = None,
              summaries: Mapping[str, History] | None = None) -> ChurnModel:
    """Fit BG/NBD on every customer's purchase days up to ``as_of`` (``summaries`` of them, ``days``, or read from
    the store) and keep it; NotFound without data."""
    rows = summaries if summaries is not None else histories(
        deps.store.purchase_days(until=as_of) if days is None else days, as_of)
    # The latest fit kept up to that date, else the latest kept at all (the daily refit's, of today): a hint that
    # starts the optimiser near the answer.
    near = deps.store.latest_model(until=as_of) or deps.store.latest_model(until=date.max)
    try:
        model = fit_converging(rows, as_of, near=None if near is None else near.model)
    except NotEnoughData as exc:
        raise NotFound("not_enough_data", str(exc)) from None
    except NoConvergence as exc:
        raise Unavailable("model_did_not_converge", str(exc)) from None
    with deps.store.transaction():
        deps.store.put_model(model, fitted_at=iso_utc(deps.clock()))
    return model


def model_as_of(as_of: date, *, deps: Deps,
                summaries: Callable[[], Mapping[str, History]] | None = None) -> tuple[ChurnModel, str]:
    """The model fitted as of a date (today at the latest): the cached fit, or a new one (on ``summaries()`` if
    given: a caller that summarises every customer's days anyway shares its work)."""
    if as_of > deps.clock().astimezone(deps.zone).date():
        # Fitted as of a future day, the model would count weeks nobody has lived yet (T), and be kept.
        raise InvalidInput("as_of_in_future", "as_of cannot be later than today")
    if as_of < EARLIEST:
        raise InvalidInput("as_of_out_of_range", f"as_of cannot be earlier than {EARLIEST.isoformat()}")
    held = deps.store.model(as_of)
    if held is None:
        with deps.fitting:
            held = deps.store.model(as_of)  # kept by a fit this request waited for
            if held is None:
                fit_model(as_of, deps=deps, summaries=None if summaries is None else summaries())
                held = deps.store.model(as_of)
                assert held is not None
    return held.model, held.fitted_at


def ranked(as_of: date, *, deps: Deps, weeks: float,
           customer_id: str | None = None) -> tuple[ChurnModel, str, list[Standing]]:
    """Customers under the model as of a date, most likely lost first (or just one customer); the model, when it
    was fitted, the standings."""
    model, fitted_at = model_as_of(as_of, deps=deps)
    if customer_id is not None:
        survivor = deps.store.customer_of(customer_id)
        days = deps.store.purchase_days(until=as_of, customer_id=survivor)
        rows = standings(model, days, as_of, weeks)
        if not rows:
            raise NotFound("customer_not_found", "no purchases of that customer by that date")
        return model, fitted_at, rows
    key = (as_of, weeks, fitted_at)
    held = deps.ranking
    if held is not None and held[0] == key and time.monotonic() - held[1] < deps.config.ranking_cache_s:
        return model, fitted_at, held[2]
    # Every customer's purchase days, scored: seconds at 100,000 customers, so the pages of one ranking share it.
    rows = standings(model, deps.store.purchase_days(until=as_of), as_of, weeks)
    rows.sort(key=lambda s: (s.p_alive, -s.expected, s.customer_id))
    deps.ranking = (key, time.monotonic(), rows)
    return model, fitted_at, rows


# -- issue 12, scoped access (H2) -----------------------------------------------------------------


def owner_of(customer_id: str, *, deps: Deps) -> str | None:
    """The owning store of the customer an id (a merged-away one too) belongs to now."""
    survivor = deps.store.customer_of(customer_id)
    return deps.store.owners_of([survivor])[survivor]


def visible_alert(alert_id: str, *, deps: Deps, seeing: Visibility) -> None:
    """An alert of a customer outside the caller's scope answers as an unknown alert."""
    if seeing.company_wide:
        return
    alert = deps.store.alert(alert_id)
    if alert is None or not seeing.sees(owner_of(alert.customer_id, deps=deps)):
        raise NotFound("alert_not_found", "no alert with that id")


def visible_standings(rows: list, *, deps: Deps, seeing: Visibility) -> list:
    """The standings of customers the caller may see (the ranking is held whole in memory, then paged)."""
    if seeing.company_wide:
        return rows
    owners = deps.store.owners_of([s.customer_id for s in rows])
    return [s for s in rows if seeing.sees(owners[s.customer_id])]

# -- issue 12, export (H4) ------------------------------------------------------------------------


def customer_alerts(customer_id: str, *, deps: Deps) -> tuple[str, list[Alert]]:
    """Every alert of a customer in any status, newest first, as ``GET /v1/alerts?customer_id=`` lists them
    (a merged-away id answers for its survivor); what the export holds."""
    from services.alerts.store import AlertQuery

    store = deps.store
    root = store.customer_of(customer_id)
    query = AlertQuery(customer_ids=tuple(store.records_of(root)))
    found: list[Alert] = []
    while True:
        page, total = store.find_alerts(query, offset=len(found), limit=500)
        found += page
        if not page or len(found) >= total:
            return root, found
