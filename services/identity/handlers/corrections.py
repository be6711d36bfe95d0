"""Identity's staff corrections (issue 14), behind the HTTP routes: merge two customers a conflict review
found to be one person, change a customer's phone, correct profile fields, assign a customer to a store
or an account manager.

Each runs in one store transaction that the route's audit entry joins; what other services must learn
goes through the outbox the way consumption announces it (``CustomerMerged``, ``CustomerOwnerChanged``, and
for a profile value a resolved customer event from the ``staff/<who>`` source, see ``staff_event``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from services.identity.domain.cleaning import clean_identity
from services.identity.domain.corrections import overruled_by_channels, staff_source, staff_values
from services.identity.domain.erasure import pseudonyms_of
from services.identity.handlers import Deps
from services.identity.handlers.consume import announce_owners
from services.identity.handlers.queries import active_record
from services.identity.store import AssignmentRow
from shared.access.visibility import Visibility
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.events import IDENTIFIER_TYPES, Identity, InvalidEvent, parse_event
from shared.contract.facts import epoch_ms, newest
from shared.contract.messages import CustomerMerged, kind_headers, resolved_event_json
from shared.http.errors import Conflict, InvalidInput, NotFound
from shared.storage.base import OutboxMessage
from shared.streaming.outbox import outbox_message


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def merge(customer_id: str, *, other_id: str, by: str, deps: Deps, conflict_id: str | None = None) -> dict[str, Any]:
    """Merge ``other_id`` into ``customer_id`` as consumption merges (undone by the unmerge route); when only
    the other customer has a phone it survives instead, as a phone customer always does."""
    store = deps.store
    with store.transaction():
        survivor, merged = active_record(store, customer_id), active_record(store, other_id)
        if survivor.id == merged.id:
            raise Conflict("already_one_customer", "these two ids are one customer already")
        if survivor.phone is None and merged.phone is not None:
            survivor, merged = merged, survivor
        if conflict_id is not None:
            # Only the conflict about these two is closed by their merge: citing another one would close a
            # review nobody did and leave its customers apart.
            named = store.conflict_customers(conflict_id)
            if named is None:
                raise NotFound("conflict_not_found", "no such conflict")
            about = {active_record(store, c).id for c in named if store.record(c) is not None}
            if not {survivor.id, merged.id} <= about:
                raise Conflict("conflict_not_about_these", "that conflict is not about these two customers",
                               details={"conflict_id": conflict_id})
            store.set_conflict_status(conflict_id, status="resolved", by=by, note=None)
        merge_id = _new_id("m")
        at = deps.clock()
        moved = store.merge(survivor.id, merged.id, merge_id=merge_id, at=iso_utc(at),
                            cause={"kind": "staff", "by": by, "conflict_id": conflict_id})
        store.touch(survivor.id, at=iso_utc(at))
        body = CustomerMerged(kind="customer.merged", merge_id=merge_id, survivor_id=survivor.id,
                              merged_id=merged.id, records=moved, at=at)
        # The same messages a merge found by consumption sends: every service follows the survivor.
        outbox = store.outbox_add([outbox_message(deps.settings, topics.CUSTOMER_MERGED, survivor.id, body),
                                   *announce_owners({survivor.id}, deps=deps)])
    return {"merge_id": merge_id, "survivor_id": survivor.id, "merged_id": merged.id, "records": moved,
            "outbox": outbox}


def _phone(raw: str, *, deps: Deps) -> str:
    """The new phone in the platform's notation; 422 naming the field when it is none."""
    try:
        [(_kind, phone)] = clean_identity(Identity(phone=raw), deps.cleaning)
    except InvalidEvent:
        raise InvalidInput("invalid_phone", "phone: not a phone number this deployment accepts",
                           details=[{"loc": "body.phone", "msg": "not a usable phone number"}]) from None
    return phone


def change_phone(customer_id: str, *, phone: str, by: str, deps: Deps, seeing: Visibility) -> dict[str, Any]:
    """Give a customer a new phone: the old one moves to the identifier history (an event carrying it from now
    on is someone else's), the new one links to the customer. 409 when another customer holds it."""
    store, new = deps.store, _phone(phone, deps=deps)
    ident = ("phone", new)
    with store.transaction():
        root = active_record(store, customer_id)
        held = store.find([ident]).get(ident)
        if held is not None and held.root_id == root.id:
            if root.phone == new:
                raise Conflict("phone_unchanged", "the customer has that phone number already")
            raise Conflict("phone_in_use", "a record merged into this customer holds that phone number; unmerge it "
                           "first")
        if held is not None:
            owner = store.owners_of([held.root_id])[held.root_id]
            # Named only to a caller who may see that customer: an id outside one's scope is never shown.
            details = {"customer_id": held.root_id} if seeing.company_wide or seeing.sees(owner) else None
            raise Conflict("phone_in_use", "another customer holds that phone number", details=details)
        if store.has_erasures() and store.erased(pseudonyms_of([ident], deps.pseudo)):
            raise Conflict("phone_erased", "that phone number belonged to an erased customer: events carrying it "
                           "are dropped")
        change_id, at = _new_id("pc"), iso_utc(deps.clock())
        replaced = root.phone is not None and store.replace_identifier(("phone", root.phone), change_id=change_id,
                                                                       by=by, at=at)
        store.link(root.id, [ident], source=staff_source(by), event_id=change_id, at=at)
        store.set_phone(root.id, phone=new, at=at)
    return {"customer_id": root.id, "change_id": change_id, "replaced": replaced}


def correct_profile(customer_id: str, *, fields: dict[str, object], by: str, deps: Deps) -> dict[str, Any]:
    """Set profile fields from the ``staff`` source, dated now: they show until a channel reports a newer value."""
    if not fields:
        raise InvalidInput("no_fields", "give at least one field to correct (name, gender, birthday, email, city, "
                           "attributes)", details=[{"loc": "body", "msg": "no field to correct"}])
    data: dict[str, Any] = {"attributes": {}}
    for name, value in fields.items():
        if name.startswith("attributes."):
            data["attributes"][name.removeprefix("attributes.")] = value
        else:
            data[name] = value
    return _correct(customer_id, fields=fields, announced=("crm.profile", data), by=by, deps=deps)


def correct_consent(customer_id: str, *, purpose: str, granted: bool, by: str, deps: Deps) -> dict[str, Any]:
    """Record a consent the customer gave or withdrew in front of staff (``staff`` source, dated now), as a
    ``crm.consent`` event would: it decides until a channel reports a newer one."""
    return _correct(customer_id, fields={f"consent.{purpose}": granted}, by=by, deps=deps,
                    announced=("crm.consent", {"purpose": purpose, "granted": granted}))


def _correct(customer_id: str, *, fields: dict[str, object], announced: tuple[str, dict[str, Any]], by: str,
             deps: Deps) -> dict[str, Any]:
    """Keep staff values and announce them, with the customer's touch and the outbox, in one transaction."""
    store, now = deps.store, deps.clock()
    correction_id = _new_id("pf")
    values = staff_values(fields, by=by, at_ms=epoch_ms(now), correction_id=correction_id)
    with store.transaction():
        root = active_record(store, customer_id)
        later = overruled_by_channels(values, newest(store.attributes(store.group(root.id))))
        if later:
            raise Conflict("newer_channel_value", "a channel reported a value dated after now for these fields",
                           details={"fields": later})
        store.put_attributes([(root.id, values)])
        store.touch(root.id, at=iso_utc(now))
        type_, data = announced
        outbox = store.outbox_add([staff_event(root.id, type_=type_, data=data, by=by, event_id=correction_id,
                                               at=now, deps=deps)])
    return {"customer_id": root.id, "correction_id": correction_id, "fields": [v.field for v in values],
            "at": iso_utc(now), "outbox": outbox}


def staff_event(customer_id: str, *, type_: str, data: dict[str, Any], by: str, event_id: str, at: datetime,
                deps: Deps) -> OutboxMessage:
    """A correction as every service reads a profile or consent change: the resolved customer event of a
    channel event from the source ``staff/<who>``, with the correction's id (so a duplicate or a replay is
    the same event) and its time (so a channel value dated later wins again downstream as it does here)."""
    event = parse_event({"specversion": "1.0", "id": event_id, "source": staff_source(by), "type": type_,
                         "time": at.isoformat(), "data": {"identity": _identity_of(customer_id, deps=deps), **data}},
                        resolved=True)
    body = resolved_event_json(customer_id=customer_id, record_id=customer_id, event_json=event.model_dump_json(),
                               resolved_at=at)
    return outbox_message(deps.settings, topics.CUSTOMER_EVENTS, customer_id, body,
                          extra_headers=kind_headers("customer.event", event.type))


def _identity_of(record_id: str, *, deps: Deps) -> dict[str, str]:
    """The identity block of a staff event: the record's first identifier by priority, as a resolved event of
    the record carries (no service resolves it again); the record id as an anonymous id when it has none."""
    held = {row.type: row.value for row in deps.store.identifiers([record_id])}
    kind = next((t for t in IDENTIFIER_TYPES if held.get(t)), None)
    return {kind: held[kind]} if kind else {"anonymous_id": record_id}


def assign(customer_id: str, *, kind: str, value: str | None, by: str, deps: Deps) -> tuple[str, list[OutboxMessage]]:
    """Assign a customer to a store (its owning store from now on) or an account manager; ``None`` ends the
    assignment (the owning store is computed again). Returns the customer and what to relay: the owner change,
    or the manager as the other services read it."""
    store, now = deps.store, deps.clock()
    at = iso_utc(now)
    with store.transaction():
        root = active_record(store, customer_id).id
        if value is None:
            store.remove_assignment(root, kind=kind)
        else:
            store.put_assignment(AssignmentRow(root, kind, value, by, at))
        store.touch(root, at=at)
        if kind == "store":
            outbox = store.outbox_add(announce_owners({root}, deps=deps))
        else:
            outbox = store.outbox_add([_manager_event(root, value=value, by=by, at=now, deps=deps)])
    return root, outbox


def _manager_event(root: str, *, value: str | None, by: str, at: datetime, deps: Deps) -> OutboxMessage:
    """An account manager assignment as the other services read a manager: ``attributes.account_manager`` of a
    staff profile event. Ending one announces the manager the customer's profile names without it (a
    channel's ``attributes.account_manager``, or none)."""
    if value is None:
        held = newest(deps.store.attributes(deps.store.group(root))).get("attributes.account_manager")
        value = held.value if held is not None else None
    return staff_event(root, type_="crm.profile", data={"attributes": {"account_manager": value}}, by=by,
                       event_id=_new_id("am"), at=at, deps=deps)
