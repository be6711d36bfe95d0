"""What the alerts service needs from storage: a Protocol, the rows it speaks in, and adapter selection.

Facts are kept per identity record (a customer's facts are those of ``records_of(customer)``), so
merges and unmerges follow the membership mapping. Alerts are kept per customer with the customer
they were raised for (``origin_id``), so an undone merge gives them back.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from services.alerts.domain.facts import CustomerFacts
from services.alerts.domain.workflow import Alert
from shared.churn import ChurnModel
from shared.clock import iso_utc, parse_iso
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.membership import Membership
from shared.storage.outbox import OutboxStore


@dataclass(frozen=True)
class OccurrenceRow:
    """A complaint, survey or tier upgrade of one record."""

    kind: str  # complaint | survey | upgrade | expired
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


def sla_filter(breached: bool, *, hours: dict[str, float], now: datetime) -> SlaFilter:
    """The SLA filter as of ``now`` for the hours to resolve of each severity."""
    limits = {s: timedelta(hours=h) for s, h in hours.items()}
    return SlaFilter(breached, {s: iso_utc(now - d) for s, d in limits.items()},
                     {s: d // timedelta(microseconds=1) for s, d in limits.items()})


def took_us(alert: Alert) -> int | None:
    """How long a resolved alert took to resolve, in microseconds."""
    return None if alert.resolved_at is None else (alert.resolved_at - alert.opened_at) // timedelta(microseconds=1)


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


# -- row <-> document helpers both adapters use ---------------------------------------------------

_FIELDS = tuple(Alert.__dataclass_fields__)
_TIMES = ("opened_at", "updated_at", "last_trigger_at", "acknowledged_at", "resolved_at")


def alert_doc(alert: Alert) -> dict[str, Any]:
    """An alert as a flat document (times as sortable UTC text)."""
    doc = {k: getattr(alert, k) for k in _FIELDS}  # shallow: asdict deep-copies, a tenth of a scan's time
    for k in _TIMES:
        if doc[k] is not None:
            doc[k] = iso_utc(doc[k])
    return doc


def alert_of(doc: dict[str, Any]) -> Alert:
    """The alert a document holds."""
    values = {k: doc[k] for k in _FIELDS}
    for k in _TIMES:
        if values[k] is not None:
            values[k] = parse_iso(values[k])
    return Alert(**values)


def from_ms(ms: int) -> datetime:
    """An aware UTC datetime from epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def model_doc(model: ChurnModel) -> dict[str, Any]:
    """A churn model's fields, ``as_of`` as ISO text."""
    return {**asdict(model), "as_of": model.as_of.isoformat()}


def model_of(doc: dict[str, Any]) -> ChurnModel:
    """The churn model a document holds."""
    return ChurnModel(float(doc["r"]), float(doc["alpha"]), float(doc["a"]), float(doc["b"]), int(doc["customers"]),
                      int(doc["repeat_purchases"]), date.fromisoformat(doc["as_of"]))


@dataclass
class FactRows:
    """The rows of one customer's records, as an adapter reads them, before they become facts."""

    records: list[str]
    purchases: list[tuple[str, str | None, int]]  # day, store, amount
    refunds: int
    occurrences: list[OccurrenceRow]
    expiries: list[ExpiryRow]
    attributes: list[FieldValue]
    loyalty: list[LoyaltyRow]
    last_resolved: dict[str, str] = field(default_factory=dict)


def assemble(customer_id: str, rows: FactRows) -> CustomerFacts:
    """A customer's facts from its records' rows (newest attribute wins; the customer's own loyalty part
    first, since loyalty republishes the survivor's part after a merge)."""
    from services.alerts.domain.facts import Expiry, Occurrence, Purchase
    from shared.contract.facts import newest

    occ: dict[str, list[Occurrence]] = {"complaint": [], "survey": [], "upgrade": [], "expired": []}
    for o in sorted(rows.occurrences, key=lambda o: (o.at_ms, o.key)):
        occ[o.kind].append(Occurrence(o.key, from_ms(o.at_ms), o.store_id, o.value, o.record_id))
    attrs = newest(rows.attributes)
    born = attrs.get("birthday")
    manager = attrs.get("attributes.account_manager")
    own = [x for x in rows.loyalty if x.record_id == customer_id]
    loyalty = own[0] if own else max(rows.loyalty, key=lambda x: x.version, default=None)
    return CustomerFacts(
        customer_id=customer_id,
        purchases=tuple(Purchase(date.fromisoformat(d), s, a)
                        for d, s, a in sorted(rows.purchases, key=lambda p: (p[0], p[1] or "", p[2]))),
        refund_minor=rows.refunds,
        complaints=tuple(occ["complaint"]), surveys=tuple(occ["survey"]), upgrades=tuple(occ["upgrade"]),
        expired=tuple(occ["expired"]),
        expiries=tuple(Expiry(e.key, e.points, from_ms(e.expires_ms))
                       for e in sorted(rows.expiries, key=lambda e: e.key)),
        birthday=_date(born.value) if born else None,
        account_manager=str(manager.value) if manager and manager.value else None,
        tier=loyalty.tier if loyalty else None,
        balance=loyalty.balance if loyalty else None,
        last_resolved={t: parse_iso(at) for t, at in rows.last_resolved.items()},
    )


def newest_loyalty(rows: list[LoyaltyRow], held: dict[str, str]) -> list[LoyaltyRow]:
    """Per record, the newest of these parts if it is newer than the version held."""
    best: dict[str, LoyaltyRow] = {}
    for r in rows:
        if r.version > held.get(r.record_id, "") and (r.record_id not in best or r.version > best[r.record_id].version):
            best[r.record_id] = r
    return list(best.values())


def _date(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return None


def open_store(url: str, *, mongo_client=None) -> AlertsStore:
    """The alerts store for ``CRM_STORE_URL``."""
    from shared.storage.base import mongo_database, sqlite_path, store_kind

    if store_kind(url) == "sqlite":
        from services.alerts.store_sqlite import SqliteAlertsStore

        return SqliteAlertsStore(sqlite_path(url, "alerts"))
    from services.alerts.store_mongo import MongoAlertsStore

    return MongoAlertsStore(mongo_database(url, "alerts", mongo_client))
