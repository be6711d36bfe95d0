"""Identity's rows as its HTTP schemas: the single customer view, the timeline, merges and conflicts.

Mapping only: the reads that gather the rows are in ``handlers/queries.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from services.identity.domain.corrections import staff_by
from services.identity.schemas import (
    AccountManagerRead,
    AuditPage,
    AuditRead,
    ConflictRead,
    CustomerRead,
    FieldSource,
    IdentifierRead,
    MergeRead,
    OwnerRead,
    StatsRead,
    StoreRead,
    TimelineEvent,
    TimelinePage,
)
from services.identity.store import (
    AssignmentRow,
    ConflictRow,
    EventRow,
    IdentifierRow,
    MergeRow,
    RecordRow,
    ReplacedIdentifierRow,
    StatsRow,
)
from shared.access import masking
from shared.access.audit import AuditEntry
from shared.access.stores import Store
from shared.contract.facts import FieldValue, from_minor
from shared.contract.view_parts import AlertsPart, CampaignsPart, LoyaltyPart
from shared.http.bounds import encode_cursor

PROFILE_FIELDS = ("name", "gender", "birthday", "email", "city")


def _iso_local(ms: int | None, zone: ZoneInfo) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).isoformat()


def customer(root: RecordRow, *, records: dict[str, RecordRow | None], identifiers: list[IdentifierRow],
             values: dict[str, FieldValue], stats: StatsRow, home_store: str | None, parts: dict[str, list[dict]],
             reveal: bool, zone: ZoneInfo, replaced: list[ReplacedIdentifierRow] | None = None,
             owner: str | None = None, assignments: dict[str, AssignmentRow] | None = None) -> CustomerRead:
    """The single customer view of an active customer, from the rows of its group; personal data (phones,
    e-mails, name, birthday, custom attributes) masked unless ``reveal`` (an admin who asked)."""
    group = list(records)
    idents = [
        IdentifierRead(type=i.type, value=i.value if reveal else masking.identifier(i.type, i.value),
                       first_seen=i.first_seen, source=_id(i.source, reveal), event_id=_id(i.event_id, reveal),
                       record_id=i.record_id, replaced_at=getattr(i, "replaced_at", None),
                       replaced_by=getattr(i, "replaced_by", None))
        # The identifier history: what links now and what a phone change replaced, in the order first seen.
        for i in sorted([*identifiers, *(replaced or [])], key=lambda r: (r.first_seen, r.type, r.value))
    ]
    assignments = assignments or {}
    attributes, sources, consents = _attributes(values, reveal)
    if not reveal:
        attributes = masking.attributes(attributes, masking.known_names([attributes.get("name")]))
    loyalty = parts.get("loyalty")
    return CustomerRead(
        customer_id=root.id,
        phone=(root.phone if reveal else masking.phone(root.phone)) if root.phone else None,
        identifiers=idents,
        attributes=attributes,
        attribute_sources=sources,
        consents=consents,
        stats=StatsRead(
            purchase_count=stats.purchase_count,
            purchase_days=stats.purchase_days,
            total_spend=str(from_minor(stats.spend_minor)),
            refund_total=str(from_minor(stats.refund_minor)),
            first_purchase_at=_iso_local(stats.first_ms, zone),
            last_purchase_at=_iso_local(stats.last_ms, zone),
            home_store=home_store,
        ),
        loyalty=LoyaltyPart.model_validate(loyalty[0]) if loyalty else None,
        alerts=AlertsPart(open=[a for p in parts.get("alerts", []) for a in AlertsPart.model_validate(p).open]),
        campaigns=[c for p in parts.get("campaigns", []) for c in CampaignsPart.model_validate(p).items],
        merged_from=sorted(r for r in group if r != root.id),
        updated_at=max(r.updated_at for r in records.values() if r),
        owner=_owner(owner, assignments.get("store")),
        account_manager=AccountManagerRead(id=m.value, assigned_by=m.by, assigned_at=m.at)
        if (m := assignments.get("manager")) else None,
    )


def _owner(store_id: str | None, assigned: AssignmentRow | None) -> OwnerRead:
    # The owning store as announced; "assigned" only while the staff assignment is what decides it.
    if assigned is not None and assigned.value == store_id:
        return OwnerRead(store_id=store_id, assigned=True, assigned_by=assigned.by, assigned_at=assigned.at)
    return OwnerRead(store_id=store_id, assigned=False)


def _id(value: str | None, reveal: bool) -> str | None:
    # A channel's own id or source path may be built from a phone (wx-13512340001-0001): masked unless revealed.
    return value if reveal or value is None else masking.scrub_id(value)


def _attributes(values: dict[str, FieldValue], reveal: bool = True):
    attributes: dict = {}
    custom: dict = {}
    sources: dict[str, FieldSource] = {}
    consents: dict[str, dict] = {}
    for name, v in sorted(values.items()):
        by = staff_by(v.source)
        src = FieldSource(channel=v.source.split("/", 1)[0], source=v.source if by else _id(v.source, reveal),
                          event_id=v.event_id if by else _id(v.event_id, reveal),
                          time=datetime.fromtimestamp(v.time_ms / 1000, UTC).isoformat(), by=by)
        if name.startswith("consent."):
            consents[name.removeprefix("consent.")] = {"granted": v.value, **src.model_dump(exclude={"by"})}
            continue
        if name.startswith("attributes."):
            custom[name.removeprefix("attributes.")] = v.value
        else:
            attributes[name] = v.value
        sources[name] = src
    for name in PROFILE_FIELDS:
        attributes.setdefault(name, None)
    attributes["custom"] = custom
    return attributes, sources, consents


def timeline_page(customer_id: str, rows: list[EventRow], *, limit: int, reveal: bool,
                  names: tuple[str, ...] = ()) -> TimelinePage:
    """A page of the timeline from up to ``limit + 1`` rows (one more says there is a next page); every
    field of the events' data masked by what it holds unless ``reveal`` (``names``: the customer's names,
    masked wherever free text mentions them)."""
    items = [
        TimelineEvent(source=_id(r.source, reveal), id=_id(r.id, reveal), type=r.type, channel=r.channel, time=r.time,
                      record_id=r.record_id, data=_data(r.payload, reveal, names))
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return TimelinePage(
        customer_id=customer_id, items=items,
        next_cursor=encode_cursor((last.time_ms, last.source, last.id)) if last else None,
    )


def _data(payload: str, reveal: bool, names: tuple[str, ...]) -> dict:
    data = json.loads(payload).get("data", {})
    return data if reveal or not isinstance(data, dict) else masking.document(data, names)


def merge(row: MergeRow, *, reveal: bool = False) -> MergeRead:
    """One merge as the merges route shows it (the channel ids of its cause masked below admin)."""
    return MergeRead(**{**vars(row), "cause": row.cause if reveal else masking.notes(row.cause)})


def conflict(row: ConflictRow, *, names: tuple[str, ...] = (), reveal: bool = False) -> ConflictRead:
    """One conflict as the conflicts route shows it: the staff note scrubbed of the customers' ``names``,
    phones, e-mails and dates; the channel's event id and source masked below admin."""
    return ConflictRead(**{**vars(row), "customer_ids": list(row.customer_ids),
                           "note": masking.scrub(row.note, names) if row.note else row.note,
                           "event_id": _id(row.event_id, reveal), "source": _id(row.source, reveal)})


# Issue 12, access (H1).
def store_read(store: Store) -> StoreRead:
    """A registered store."""
    return StoreRead(store_id=store.store_id, name=store.name, region=store.region, timezone=store.timezone,
                     parent=store.parent, meal_periods={p.name: f"{p.start:%H:%M}-{p.end:%H:%M}"
                                                        for p in store.meal_periods})


def audit_page(entries: list[AuditEntry], *, limit: int) -> AuditPage:
    """A page of the audit log from up to ``limit + 1`` entries (one more says there is a next page)."""
    more = len(entries) > limit
    last = entries[limit - 1] if more else None
    return AuditPage(items=[AuditRead(**e.as_dict()) for e in entries[:limit]],
                     next_cursor=encode_cursor((last.at, last.audit_id)) if last else None)
