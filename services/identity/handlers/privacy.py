"""Identity's privacy use cases (issue 12): erase a customer across the platform, follow the erasure,
and export everything the platform holds of one customer.

An erasure runs here in one store transaction: identity forgets the customer's records, identifiers,
timeline, facts, view parts, conflicts, merges, dead letters and pending outbox rows, keeps keyed
pseudonyms of the identifiers (so a replayed event is recognised and dropped before anything stores it)
and announces ``CustomerErased`` through its outbox. Loyalty, alerts and campaigns erase their parts when
it reaches them and confirm with ``ErasureConfirmed``, which identity notes (``consume.confirm_erasure``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from services.identity.domain.erasure import identifiers_in, pseudonyms_of, status
from services.identity.handlers import Deps
from services.identity.handlers.queries import active_record, timeline, view
from services.identity.store import ERASURE_SERVICES, ErasureRow
from shared.access import masking
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.messages import CustomerErased
from shared.http.errors import NotFound, Unavailable
from shared.streaming.outbox import outbox_message

# Dead letters are read through in pages of this many to find the ones that carry an erased identifier.
_LETTER_PAGE = 500
PEER_SERVICES = ("loyalty", "alerts", "campaigns")


class Erased(NamedTuple):
    """What an erasure leaves for its audit entry: its id, the customer, and the reason as it is kept."""

    erasure_id: str
    customer_id: str
    reason: str


def erase(customer_id: str, *, reason: str, by: str, deps: Deps,
          audit: Callable[[Erased], None] | None = None) -> Erased:
    """Erase a customer (a merged-away id erases the customer it is part of); ``audit`` records the act in
    the same transaction, with the reason as kept (the person's names and identifiers masked)."""
    store = deps.store
    now = iso_utc(deps.clock())
    erasure_id = "er_" + uuid.uuid4().hex[:20]
    with store.transaction():
        root = active_record(store, customer_id)
        records = store.group(root.id)
        idents = {(i.type, i.value) for i in store.identifiers(records)}
        idents |= {("phone", r.phone) for r in (store.record(x) for x in records) if r is not None and r.phone}
        # Phones staff replaced (issue 14) were theirs too: a replay of their old events must not bring them back.
        # One someone else holds now is that person's, and stays usable.
        replaced = {(r.type, r.value) for r in store.replaced_identifiers(records)} - idents
        idents |= replaced - set(store.find(replaced))
        pseudonyms = pseudonyms_of(idents, deps.pseudo)
        # Collected before the records go: once they are gone nothing knows this person's names any more,
        # and the reason, the audit log and the erasure row outlive them.
        names = masking.known_names([*(v.value for v in store.attributes(records) if v.field == "name"),
                                     *(value for _kind, value in idents)])

        def scrub(text: str) -> str:
            return masking.scrub(text, names)

        row = ErasureRow(erasure_id, root.id, tuple(records), scrub(reason), by, now,
                         {name: (now if name == "identity" else None) for name in ERASURE_SERVICES})
        store.audit_scrub(records, scrub=scrub, targets=_conflicts_of(records, deps=deps))
        store.erase(records, erasure=row, pseudonyms=pseudonyms)
        done = Erased(erasure_id, root.id, row.reason)
        if audit is not None:
            audit(done)
        # A view part another service published before it erased its own part must not be kept either.
        store.note_erased(records, erasure_id=erasure_id)
        # Messages about the customer not yet published, and any message kept for redrive that names them.
        store.forget_messages(keys=records, needles=[f'"{r}"' for r in records])
        _forget_letters(set(pseudonyms), deps=deps)
        body = CustomerErased(erasure_id=erasure_id, customer_id=root.id, records=records, at=deps.clock())
        outbox = store.outbox_add([outbox_message(deps.settings, topics.CUSTOMER_EVENTS, root.id, body)])
    # Crypto-shredding, once the erasure is committed (the keyring is a file of its own, outside the
    # transaction): every sealed copy of their fields, replicas and backups too, is unreadable for good.
    for record in records:
        store.keys.shred(record)
    deps.relay(outbox)
    store.scrub()
    return done


def _conflicts_of(records: list[str], *, deps: Deps) -> list[str]:
    """The ids of every conflict naming one of these records (their audit entries name no customer)."""
    found: set[str] = set()
    for record in records:
        offset = 0
        while page := deps.store.conflicts(status=None, customer_id=record, offset=offset, limit=_LETTER_PAGE):
            found.update(c.conflict_id for c in page)
            offset += len(page)
    return sorted(found)


def _forget_letters(pseudonyms: set[str], *, deps: Deps) -> None:
    """Delete the dead letters (raw channel events) that carry any of these identifier pseudonyms."""
    doomed: list[int] = []
    offset = 0
    while page := deps.store.dead_letters(offset=offset, limit=_LETTER_PAGE):
        for letter in page:
            carried = pseudonyms_of(identifiers_in(letter.value, deps.cleaning), deps.pseudo)
            if letter.id is not None and pseudonyms.intersection(carried):
                doomed.append(letter.id)
        offset += len(page)
    deps.store.dead_letters_delete(doomed)


def erasure_status(erasure_id: str, *, deps: Deps) -> dict[str, Any]:
    """Where an erasure stands: ``done`` once every service confirmed, and each service's state."""
    row = deps.store.erasure(erasure_id)
    if row is None:
        raise NotFound("erasure_not_found", "no erasure with that id")
    return {"erasure_id": row.erasure_id, **status(row.confirmed, ERASURE_SERVICES),
            "requested_at": row.requested_at, "confirmed_at": dict(row.confirmed)}


def identity_export(customer_id: str, *, deps: Deps) -> dict[str, Any]:
    """Identity's part of an export: the profile with every identifier and its source, consents, merges
    and the whole timeline, unmasked (it is the person's own copy)."""
    profile = view(customer_id, deps=deps, reveal=True)
    events: list[dict] = []
    cursor = None
    while True:
        page = timeline(profile.customer_id, deps=deps, cursor=cursor, limit=500, reveal=True)
        events += [item.model_dump(mode="json") for item in page.items]
        if not (cursor := page.next_cursor):
            break
    return {"customer_id": profile.customer_id, "profile": profile.model_dump(mode="json"), "timeline": events}


def export(customer_id: str, *, authorization: str, deps: Deps) -> dict[str, Any]:
    """One document with a key per service: identity's own part and each other service's, fetched from
    its export route with the caller's credentials. A service that does not answer is a 503 naming it."""
    mine = identity_export(customer_id, deps=deps)
    out: dict[str, Any] = {"customer_id": mine["customer_id"], "identity": mine}
    for name in PEER_SERVICES:
        try:
            response = deps.peer_get(name, f"/v1/customers/{mine['customer_id']}/export",
                                     {"Authorization": authorization})
        except Exception as exc:  # any transport failure: the service cannot be reached
            raise Unavailable("service_unavailable", f"the {name} service did not answer "
                              f"({type(exc).__name__}); try again", details={"service": name}) from None
        if response.status_code != 200:
            raise Unavailable("service_unavailable", f"the {name} service answered {response.status_code}; try again",
                              details={"service": name})
        out[name] = response.json()
    return out

