"""What both alerts adapters share: alerts and models as flat documents, a customer's facts from its rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.alerts.domain.facts import NAMED_OCCURRENCES, CustomerFacts, Expiry, Occurrence, Purchase
from services.alerts.domain.workflow import Alert
from services.alerts.store import ExpiryRow, LoyaltyRow, OccurrenceRow
from shared.churn import ChurnModel
from shared.clock import iso_utc, parse_iso
from shared.contract.facts import FieldValue, newest
from shared.storage.crypto import SERVICE, KeyRing


def took_us(alert: Alert) -> int | None:
    """How long a resolved alert took to resolve, in microseconds."""
    return None if alert.resolved_at is None else (alert.resolved_at - alert.opened_at) // timedelta(microseconds=1)



_FIELDS = tuple(Alert.__dataclass_fields__)
_TIMES = ("opened_at", "updated_at", "last_trigger_at", "acknowledged_at", "resolved_at")


# Staff notes are free text (a phone number written down, a name): sealed at rest under the service's key.
_NOTES = ("note", "acknowledged_note")


def alert_doc(alert: Alert, *, keys: KeyRing) -> dict[str, Any]:
    """An alert as a flat document (times as sortable UTC text, notes sealed)."""
    doc = {k: getattr(alert, k) for k in _FIELDS}  # shallow: asdict deep-copies, a tenth of a scan's time
    for k in _TIMES:
        if doc[k] is not None:
            doc[k] = iso_utc(doc[k])
    for k in _NOTES:
        doc[k] = keys.seal(SERVICE, f"alerts.{k}", doc[k])
    return doc


def alert_of(doc: dict[str, Any], *, keys: KeyRing) -> Alert:
    """The alert a document holds."""
    values = {k: doc[k] for k in _FIELDS}
    for k in _TIMES:
        if values[k] is not None:
            values[k] = parse_iso(values[k])
    for k in _NOTES:
        values[k] = keys.open(SERVICE, f"alerts.{k}", values[k])
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
                      int(doc["repeat_purchases"]), date.fromisoformat(doc["as_of"]),
                      float(doc.get("penalizer", 0.0)))  # fits kept before the penalty was kept: none known


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
    # Every customer a batch touches is assembled, and most have no occurrence, expiry, field or resolved alert:
    # the empty ones cost nothing.
    occ = _occurrences(rows.occurrences) if rows.occurrences else {}
    attrs = newest(rows.attributes) if rows.attributes else {}
    born = attrs.get("birthday")
    manager = attrs.get("attributes.account_manager")
    loyalty = _loyalty_of(customer_id, rows.loyalty) if rows.loyalty else None
    return CustomerFacts(
        customer_id=customer_id,
        purchases=tuple(Purchase(date.fromisoformat(d), s, a) for d, s, a in _by_day(rows.purchases)),
        refund_minor=rows.refunds,
        complaints=occ.get("complaint", ()), surveys=occ.get("survey", ()), upgrades=occ.get("upgrade", ()),
        expired=occ.get("expired", ()),
        others={kind: items for kind, items in occ.items() if kind not in NAMED_OCCURRENCES},
        expiries=tuple(Expiry(e.key, e.points, from_ms(e.expires_ms))
                       for e in sorted(rows.expiries, key=lambda e: e.key)) if rows.expiries else (),
        birthday=_date(born.value) if born else None,
        account_manager=str(manager.value) if manager and manager.value else None,
        tier=loyalty.tier if loyalty else None,
        balance=loyalty.balance if loyalty else None,
        last_resolved={t: parse_iso(at) for t, at in rows.last_resolved.items()} if rows.last_resolved else {},
    )


def _occurrences(rows: list[OccurrenceRow]) -> dict[str, tuple[Occurrence, ...]]:
    """Occurrences by kind, each kind in time order."""
    occ: dict[str, list[Occurrence]] = {}
    for o in sorted(rows, key=_occurrence_order):
        occ.setdefault(o.kind, []).append(Occurrence(o.key, from_ms(o.at_ms), o.store_id, o.value, o.record_id))
    return {kind: tuple(items) for kind, items in occ.items()}


def _loyalty_of(customer_id: str, rows: list[LoyaltyRow]) -> LoyaltyRow | None:
    """The customer's own loyalty part, else its records' newest."""
    own = [x for x in rows if x.record_id == customer_id]
    return own[0] if own else max(rows, key=lambda x: x.version, default=None)


def _occurrence_order(o: OccurrenceRow) -> tuple[int, str]:
    return o.at_ms, o.key


def _by_day(purchases: list[tuple[str, str | None, int]]) -> list[tuple[str, str | None, int]]:
    """Purchases by day, store (none first) and amount."""
    try:
        # The rows as they are sort the same way while no store is missing (or no missing one is compared with
        # another's id), and without a key tuple built per row.
        return sorted(purchases)
    except TypeError:
        return sorted(purchases, key=lambda p: (p[0], p[1] or "", p[2]))


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
