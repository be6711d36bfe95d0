"""Identity rules for resolution: which customer an event belongs to, the links, merges and conflicts it
causes, and the home store of a customer. Pure functions over facts the handler loads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.identity.domain.cleaning import Ident, Pseudo


def record_id_for(ident: Ident, pseudo: Pseudo, *, replaced: int = 0) -> str:
    """A record's id: the keyed pseudonym of the identifier that created it (stable across replays).

    A phone staff replaced on a customer (issue 14) may come back as someone else's: the record it creates
    then is named after the phone and how often it was replaced, since the first id is its old customer's."""
    kind, value = ident
    return "c_" + (pseudo(kind, f"{value}#{replaced}") if replaced else pseudo(kind, value))


@dataclass(frozen=True)
class Found:
    """Where a known identifier points: its record, that record's active customer, and whether
    that customer has a phone (a phone customer is never merged automatically)."""

    record_id: str
    root_id: str
    root_has_phone: bool


@dataclass(frozen=True)
class Conflict:
    """An event that would join two customers who each have a phone: recorded, never applied."""

    kind: str
    identifier: Ident
    customer_ids: tuple[str, ...]


@dataclass
class Resolution:
    """What one event does to identity: the record it belongs to and the changes to make."""

    record_id: str
    root_id: str
    create: tuple[str, str | None] | None = None  # (record id, phone) for a new record
    links: list[Ident] = field(default_factory=list)
    merges: list[tuple[str, str, Ident]] = field(default_factory=list)  # survivor, merged, cause
    conflicts: list[Conflict] = field(default_factory=list)


def resolve(
    idents: list[Ident],
    found: Mapping[Ident, Found],
    blocked: set[frozenset[str]],
    pseudo: Pseudo,
    replaced: Mapping[Ident, int] | None = None,
) -> Resolution:
    """Decide which customer an event belongs to and which links and merges it causes.

    The phone is the key. Other identifiers join the phone's customer; a customer known only by
    other identifiers (provisional) is merged into the phone's customer. Two customers that each
    have a phone are never merged: that is a conflict for review, and the event links nothing.
    ``replaced``: how often staff replaced each identifier (a phone change), for the id of a new record.
    """
    phone = next((i for i in idents if i[0] == "phone"), None)
    if phone is not None:
        known = found.get(phone)
        if known is None:
            rid = record_id_for(phone, pseudo, replaced=(replaced or {}).get(phone, 0))
            res = Resolution(record_id=rid, root_id=rid, create=(rid, phone[1]))
        else:
            res = Resolution(record_id=known.record_id, root_id=known.root_id)
        return _join_others(res, idents, found, blocked, target_has_phone=True)

    roots = {f.root_id: f for f in (found.get(i) for i in idents) if f is not None}
    if not roots:
        rid = record_id_for(idents[0], pseudo)
        res = Resolution(record_id=rid, root_id=rid, create=(rid, None))
        res.links = list(idents)
        return res
    with_phone = [f for f in roots.values() if f.root_has_phone]
    # The event belongs to the record of its highest-priority known identifier.
    first = next(found[i] for i in idents if i in found)
    if len(with_phone) > 1:
        return Resolution(
            record_id=first.record_id,
            root_id=first.root_id,
            conflicts=[Conflict("identifiers_of_two_phone_customers", _first_known(idents, found),
                                tuple(sorted(f.root_id for f in with_phone)))],
        )
    target = with_phone[0] if with_phone else min(roots.values(), key=lambda f: f.root_id)
    res = Resolution(record_id=first.record_id, root_id=target.root_id)
    return _join_others(res, idents, found, blocked, target_has_phone=bool(with_phone))


def _first_known(idents: list[Ident], found: Mapping[Ident, Found]) -> Ident:
    return next(i for i in idents if i in found)


def _join_others(
    res: Resolution,
    idents: list[Ident],
    found: Mapping[Ident, Found],
    blocked: set[frozenset[str]],
    *,
    target_has_phone: bool,
) -> Resolution:
    merges: dict[str, Ident] = {}
    for ident in idents:
        known = found.get(ident)
        if known is None:
            res.links.append(ident)
            continue
        if known.root_id == res.root_id:
            continue
        if known.root_has_phone or frozenset((known.root_id, res.root_id)) in blocked:
            kind = "would_merge_two_phone_customers" if known.root_has_phone else "merge_was_undone"
            res.conflicts.append(Conflict(kind, ident, tuple(sorted((res.root_id, known.root_id)))))
            continue
        merges.setdefault(known.root_id, ident)
    if res.conflicts:
        # An event that would join two phone customers links nothing but a new phone to its record.
        res.links = [i for i in res.links if i[0] == "phone"]
        return res
    res.merges = [(res.root_id, merged, cause) for merged, cause in merges.items()]
    return res


def home_store(store_days: list[tuple[str, int, str]]) -> str | None:
    """The store with most purchase days; ties go to the most recent day, then the lowest id."""
    if not store_days:
        return None
    ranked = sorted(store_days, key=lambda s: s[0])
    ranked.sort(key=lambda s: (s[1], s[2]), reverse=True)
    return ranked[0][0]
