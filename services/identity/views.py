"""Read models: the single customer view and the timeline, assembled from identity's store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from services.identity import domain
from services.identity.schemas import (
    CustomerRead,
    FieldSource,
    IdentifierRead,
    StatsRead,
    TimelineEvent,
    TimelinePage,
)
from services.identity.store import IdentityStore, RecordRow
from shared.contract.facts import from_minor, newest
from shared.contract.view_parts import AlertsPart, CampaignsPart, LoyaltyPart
from shared.http.bounds import decode_cursor, encode_cursor
from shared.http.errors import NotFound
from shared.privacy import mask_phone

PROFILE_FIELDS = ("name", "gender", "birthday", "email", "city")


def active_record(store: IdentityStore, customer_id: str) -> RecordRow:
    """The active customer a (possibly merged) customer id belongs to now."""
    record = store.record(customer_id)
    if record is None:
        raise NotFound("customer_not_found", "no customer with that id")
    if record.root_id != record.id:
        record = store.record(record.root_id)
        assert record is not None
    return record


def _iso_local(ms: int | None, zone: ZoneInfo) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).isoformat()


def customer_view(store: IdentityStore, customer_id: str, *, reveal: bool, zone: ZoneInfo) -> CustomerRead:
    """The single customer view; phones are masked unless ``reveal`` (admin)."""
    root = active_record(store, customer_id)
    group = store.group(root.id)
    records = {r: store.record(r) for r in group}
    shown = (lambda v: v) if reveal else mask_phone
    idents = [
        IdentifierRead(type=i.type, value=shown(i.value) if i.type == "phone" else i.value,
                       first_seen=i.first_seen, source=i.source, event_id=i.event_id, record_id=i.record_id)
        for i in store.identifiers(group)
    ]
    attributes, sources, consents = _attributes(store, group)
    stats = store.stats(group)
    # Only the active customer's own parts: services republish the survivor's after a merge.
    parts = store.parts([root.id])
    loyalty = parts.get("loyalty")
    return CustomerRead(
        customer_id=root.id,
        phone=shown(root.phone) if root.phone else None,
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
            home_store=domain.home_store(stats.store_days),
        ),
        loyalty=LoyaltyPart.model_validate(loyalty[0]) if loyalty else None,
        alerts=AlertsPart(open=[a for p in parts.get("alerts", []) for a in AlertsPart.model_validate(p).open]),
        campaigns=[c for p in parts.get("campaigns", []) for c in CampaignsPart.model_validate(p).items],
        merged_from=sorted(r for r in group if r != root.id),
        updated_at=max(r.updated_at for r in records.values() if r),
    )


def _attributes(store: IdentityStore, group: list[str]):
    attributes: dict = {}
    custom: dict = {}
    sources: dict[str, FieldSource] = {}
    consents: dict[str, dict] = {}
    for name, v in sorted(newest(store.attributes(group)).items()):
        src = FieldSource(channel=v.source.split("/", 1)[0], source=v.source, event_id=v.event_id,
                          time=datetime.fromtimestamp(v.time_ms / 1000, UTC).isoformat())
        if name.startswith("consent."):
            consents[name.removeprefix("consent.")] = {"granted": v.value, **src.model_dump()}
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


def _masked(data: dict, reveal: bool) -> dict:
    ident = data.get("identity")
    if reveal or not isinstance(ident, dict) or not ident.get("phone"):
        return data
    digits = "".join(ch for ch in str(ident["phone"]) if ch.isdigit())
    return {**data, "identity": {**ident, "phone": f"{digits[-11:-8]}****{digits[-4:]}"}}


def timeline(store: IdentityStore, customer_id: str, *, cursor: str | None, limit: int,
             reveal: bool = False) -> TimelinePage:
    """A customer's events, newest first, one page at a time; phones masked unless ``reveal``."""
    root = active_record(store, customer_id)
    rows = store.timeline(store.group(root.id), before=decode_cursor(cursor, (int, str, str)), limit=limit + 1)
    items = [
        TimelineEvent(source=r.source, id=r.id, type=r.type, channel=r.channel, time=r.time,
                      record_id=r.record_id, data=_masked(json.loads(r.payload).get("data", {}), reveal))
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return TimelinePage(
        customer_id=root.id, items=items,
        next_cursor=encode_cursor((last.time_ms, last.source, last.id)) if last else None,
    )
