"""Reading store KPIs (issue 15): the aggregate rows of the months a report needs, mapped to customers now."""

from __future__ import annotations

from collections import defaultdict

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.alerts.reports.kpi import Figures, figures, first_days, month_shift, with_totals
from services.alerts.store import AlertsStore
from services.alerts.store.kpi_rows import RecordMonth


class KpiConfig(BaseSettings):
    """Settings of the store KPIs (``CRM_REPORTS_*``)."""

    model_config = SettingsConfigDict(env_prefix="CRM_REPORTS_", env_file=".env", extra="ignore")

    # A new customer is retained who buys again within this many days of their first purchase.
    retention_days: int = Field(90, ge=1, le=3650)


def compared(month: str) -> dict[str, str]:
    """The months a report shows: the month, the one before, the same month a year before."""
    return {"month": month, "previous_month": month_shift(month, -1), "same_month_last_year": month_shift(month, -12)}


def kpis(months: list[str], *, store: AlertsStore, stores: list[str] | None, retention_days: int
         ) -> dict[str, Figures]:
    """The figures of each month over ``stores`` (None: every store): the store totals, and the customer figures the
    store counts (``kpi_customers``)."""
    totals = store.kpi_totals(months=months, stores=stores)
    counted = store.kpi_customers({m: month_shift(m, -1) for m in months}, stores=stores,
                                  retention_days=retention_days)
    return {m: with_totals(counted[m], [t for t in totals if t.month == m]) for m in months}


def customer_figures(store: AlertsStore, before: dict[str, str], rows: list[RecordMonth], *, retention_days: int
                     ) -> dict[str, Figures]:
    """The customer figures of each month (``before``: month -> the month before it) from these record rows of the
    months and the months before, each record mapped to its customer now: the general path, whatever the records."""
    owner = store.customers_of(sorted({r.record_id for r in rows}))
    members = store.members(sorted(set(owner.values())))  # every record of those customers, not only buyers
    records_of: dict[str, list[str]] = defaultdict(list)
    for record, customer in members.items():
        records_of[customer].append(record)
    firsts = first_days(records_of, store.kpi_firsts(sorted(members)))
    managed = store.kpi_managed(records_of)
    by_month: dict[str, list] = defaultdict(list)
    for r in rows:
        by_month[r.month].append(r)
    return {m: figures(m, totals=[], rows=by_month[m], previous=by_month[b], owner=owner, firsts=firsts,
                       managed=managed, retention_days=retention_days) for m, b in before.items()}


def record_figures(before: dict[str, str], rows: list[RecordMonth], *, firsts: dict[str, tuple[str, str | None]],
                   managed: set[str], retention_days: int) -> dict[str, Figures]:
    """The customer figures of each month from these record rows as if each record were a customer of its own (its
    own first days, its own account manager): what a count by record holds of these records."""
    alone = {r.record_id: r.record_id for r in rows}
    by_month: dict[str, list] = defaultdict(list)
    for r in rows:
        by_month[r.month].append(r)
    return {m: figures(m, totals=[], rows=by_month[m], previous=by_month[b], owner=alone, firsts=firsts,
                       managed=managed, retention_days=retention_days) for m, b in before.items()}
