"""Identity rules: cleaning identifiers, resolving an event to a customer, merging, attributes.

Pure functions over facts the handler loads; nothing here touches a database or a broker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shared.contract.events import ChannelEventBase, Identity, InvalidEvent, PurchaseEvent
from shared.privacy import PhoneError, normalize_phone

Ident = tuple[str, str]  # (identifier type, normalised value)
Pseudo = Callable[[str, str], str]

# Which identifier names a record created without a phone (most durable first).
PRIORITY = ("phone", "wechat_unionid", "wechat_openid", "member_id", "web_user_id", "email", "anonymous_id")


@dataclass(frozen=True)
class Cleaning:
    """How events are cleaned: default phone region, values that never link, currencies taken."""

    region: str = "CN"
    blocked_phones: frozenset[str] = frozenset()
    blocked_values: frozenset[str] = frozenset({"0", "null", "none", "undefined", "test", "unknown"})
    currencies: frozenset[str] = frozenset({"CNY"})


def check_currency(event: ChannelEventBase, rules: Cleaning) -> None:
    """Refuse a purchase in a currency this deployment does not take: amounts are never converted,
    and counting USD as CNY would earn the wrong points and skew every total."""
    if isinstance(event, PurchaseEvent) and event.data.currency not in rules.currencies:
        raise InvalidEvent("unsupported_currency", [
            f"data.currency: {event.data.currency} is not accepted; accepted: {', '.join(sorted(rules.currencies))}"])


def clean_identity(identity: Identity, rules: Cleaning) -> list[Ident]:
    """Usable identifiers in priority order; a malformed phone is an error, a placeholder is dropped."""
    out: list[Ident] = []
    for kind, raw in identity.present().items():
        value = raw.strip()
        if kind == "email":
            value = value.lower()
        if _placeholder(kind, value, rules):
            continue
        if kind == "phone":
            try:
                value = normalize_phone(value, rules.region, rules.blocked_phones)
            except PhoneError as exc:
                if "blocked" in str(exc):
                    continue
                raise InvalidEvent("invalid_phone", [f"data.identity.phone: {exc}"]) from None
        out.append((kind, value))
    if not out:
        raise InvalidEvent(
            "no_usable_identifier",
            ["data.identity: every identifier is empty, a placeholder or a blocked test value"],
        )
    return out


def _placeholder(kind: str, value: str, rules: Cleaning) -> bool:
    """What staff type to get past a required field (``0``, ``null``, ``000-000``); in the phone field
    also one digit over and over (``11111111111``), which is not even a valid number."""
    if not value or value.lower() in rules.blocked_values or set(value) <= {"0", "-", " "}:
        return True
    digits = {ch for ch in value if ch.isdigit()}
    return kind == "phone" and len(digits) == 1 and set(value) <= digits | {" ", "-"}


def record_id_for(ident: Ident, pseudo: Pseudo) -> str:
    """A record's id: the keyed pseudonym of the identifier that created it (stable across replays)."""
    return "c_" + pseudo(*ident)


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
) -> Resolution:
    """Decide which customer an event belongs to and which links and merges it causes.

    The phone is the key. Other identifiers join the phone's customer; a customer known only by
    other identifiers (provisional) is merged into the phone's customer. Two customers that each
    have a phone are never merged: that is a conflict for review, and the event links nothing.
    """
    phone = next((i for i in idents if i[0] == "phone"), None)
    if phone is not None:
        known = found.get(phone)
        if known is None:
            rid = record_id_for(phone, pseudo)
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
