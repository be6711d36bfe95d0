"""What the alerts service needs from storage: a Protocol and the rows it speaks in (adapters: ``sqlite``, ``mongo``).

Facts are kept per identity record (a customer's facts are those of ``records_of(customer)``), so
merges and unmerges follow the membership mapping. Alerts are kept per customer with the customer
they were raised for (``origin_id``), so an undone merge gives them back.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from services.alerts.domain.facts import CustomerFacts
from services.alerts.domain.workflow import Alert
from services.alerts.reports.value import ValueTotals
from shared.churn import ChurnModel
from shared.clock import iso_utc
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.membership import Membership
from shared.storage.outbox import OutboxStore
from shared.storage.owners import OwnerRow


@dataclass(frozen=True)
class OccurrenceRow:
    """A complaint, survey, tier upgrade, points expiry (or another event rule's occurrence) of one record."""

    kind: str  # complaint | survey | upgrade | expired, or the kind of another event rule
    key: str
    record_id: str
    at_ms: int
    store_id: str | None = None
    value: int | str | dict | None = None


@dataclass(frozen=True)
class ExpiryRow:
    """Points loyalty announced will expire, for one record."""

    key: str
    record_id: str
    points: int
    expires_ms: int


@dataclass(frozen=True)
class LoyaltyRow:
    """Loyalty's part of a record's view: balance and tier, newest version wins."""

    record_id: str
    tier: str | None
    balance: int | None
    version: str


@dataclass(frozen=True)
class SlaFilter:
    """Alerts that broke (``breached``) or kept their severity's time to resolve, as of a moment: per severity,
    an unresolved alert opened before ``opened_before`` (ISO UTC) is late, and so is a resolved one that took
    more than ``limit_us`` microseconds."""

    breached: bool
    opened_before: dict[str, str]
    limit_us: dict[str, int]


@dataclass(frozen=True)
class AlertQuery:
    """Filters of the alert list (``customer_ids``: every record of one customer)."""

    status: str | None = None
    type: str | None = None
    severity: str | None = None
    store_id: str | None = None
    customer_ids: tuple[str, ...] | None = None
    manager: str | None = None
    sla: SlaFilter | None = None
    # Issue 12: only alerts of customers owned by these stores (None: every alert).
    owned_by: frozenset[str] | None = None


def sla_filter(breached: bool, *, hours: dict[str, float], now: datetime) -> SlaFilter:
    """The SLA filter as of ``now`` for the hours to resolve of each severity."""
    limits = {s: timedelta(hours=h) for s, h in hours.items()}
    return SlaFilter(breached, {s: iso_utc(now - d) for s, d in limits.items()},
                     {s: d // timedelta(microseconds=1) for s, d in limits.items()})


@dataclass(frozen=True)
class Cover:
    """The alert that answered a trigger: its id, its customer now, whether it is active."""

    alert_id: str
    customer_id: str
    active: bool


@dataclass(frozen=True)
class StoredModel:
    """A fitted churn model and when it was fitted."""

    model: ChurnModel
    fitted_at: str


class AlertsStore(OutboxStore, Protocol):
    """The operations the alerts service performs on its data; writes run inside ``transaction()``."""

    def transaction(self) -> AbstractContextManager[Any]: ...
    # facts (each write takes a whole batch: one round trip, not one per message)
    def seen_events(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]: ...
    def add_events(self, keys: list[tuple[str, str]]) -> None: ...
    def add_purchases(self, rows: list[PurchaseFact]) -> None: ...
    def add_refunds(self, rows: list[RefundFact]) -> None: ...
    def add_occurrences(self, rows: list[OccurrenceRow]) -> set[str]: ...
    def add_expiries(self, rows: list[ExpiryRow]) -> set[str]: ...
    def put_attributes(self, items: list[tuple[str, list[FieldValue]]]) -> None: ...
    def put_loyalty(self, rows: list[LoyaltyRow]) -> list[LoyaltyRow]: ...
    def apply_memberships(self, rows: list[Membership]) -> set[str]: ...
    def customer_of(self, record_id: str) -> str: ...
    def customers_of(self, record_ids: list[str]) -> dict[str, str]: ...
    def merged_away(self, ids: list[str]) -> set[str]: ...
    def records_of(self, customer_id: str) -> list[str]: ...
    def members(self, customer_ids: list[str]) -> dict[str, str]: ...
    def facts(self, customer_ids: list[str]) -> dict[str, CustomerFacts]: ...
    def purchase_days(self, *, until: date, customer_id: str | None = None) -> dict[str, list[date]]: ...
    # alerts
    def put_alerts(self, alerts: list[Alert]) -> None: ...
    def cover(self, triggers: list[tuple[str, str]]) -> None: ...
    def covered(self, keys: list[str]) -> dict[str, Cover]: ...
    def active_alerts(self, customer_ids: list[str]) -> list[Alert]: ...
    def alerts_from(self, origin_ids: list[str]) -> list[Alert]: ...
    def alert(self, alert_id: str) -> Alert | None: ...
    def find_alerts(self, query: AlertQuery, *, offset: int, limit: int) -> tuple[list[Alert], int]: ...
    def next_versions(self, customer_ids: list[str], *, floor: int = 0) -> dict[str, int]: ...
    # scheduling
    def set_due(self, due: dict[str, int | None]) -> None: ...
    def due_customers(self, *, until_ms: int, limit: int) -> list[str]: ...
    def customers_after(self, after: str, *, limit: int) -> list[str]: ...
    def due_count(self, *, until_ms: int) -> int: ...
    def acquire_lease(self, name: str, *, owner: str, now_ms: int, ttl_ms: int) -> bool: ...
    def get_mark(self, name: str) -> str | None: ...
    def put_mark(self, name: str, value: str) -> None: ...
    # churn model
    def put_model(self, model: ChurnModel, *, fitted_at: str) -> None: ...
    def model(self, as_of: date) -> StoredModel | None: ...
    def latest_model(self, *, until: date) -> StoredModel | None: ...

    # -- issue 12, scoped access (H2): each customer's owning store, from identity ----------
    def put_owners(self, rows: Iterable[OwnerRow]) -> None: ...
    def owners_of(self, customer_ids: list[str]) -> dict[str, str | None]: ...

    # issue 15, value: per record and purchase day, kept inside add_purchases / add_refunds
    def value_totals(self, *, since: date, until: date) -> list[ValueTotals]: ...

    # issue 12, erasure (H4); erased_ids, note_erased and forget_messages come with the outbox
    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]: ...
