"""Identity rules: cleaning identifiers, resolving an event to a customer, merging, attributes.

Pure functions over facts the handler loads; nothing here touches a database or a broker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from shared.events import (
    ConsentEvent,
    FollowEvent,
    Identity,
    InvalidEvent,
    ProfileEvent,
)
from shared.privacy import PhoneError, normalize_phone

Ident = tuple[str, str]  # (identifier type, normalised value)
Pseudo = Callable[[str, str], str]

# Which identifier names a record created without a phone (most durable first).
PRIORITY = ("phone", "wechat_unionid", "wechat_openid", "member_id", "web_user_id", "email", "anonymous_id")


@dataclass(frozen=True)
class Cleaning:
    """How identifiers are cleaned: default phone region and values that never link."""

    region: str = "CN"
    blocked_phones: frozenset[str] = frozenset()
    blocked_values: frozenset[str] = frozenset({"0", "null", "none", "undefined", "test", "unknown"})


def clean_identity(identity: Identity, rules: Cleaning) -> list[Ident]:
    """Usable identifiers in priority order; a malformed phone is an error, a placeholder is dropped."""
    out: list[Ident] = []
    for kind, raw in identity.present().items():
        value = raw.strip()
        if kind == "phone":
            try:
                out.append((kind, normalize_phone(value, rules.region, rules.blocked_phones)))
            except PhoneError as exc:
                if "blocked" not in str(exc):
                    raise InvalidEvent("invalid_phone", [f"data.identity.phone: {exc}"]) from None
            continue
        if kind == "email":
            value = value.lower()
        if not value or value.lower() in rules.blocked_values or set(value) <= {"0", "-", " "}:
            continue
        out.append((kind, value))
    if not out:
        raise InvalidEvent(
            "no_usable_identifier",
            ["data.identity: every identifier is empty, a placeholder or a blocked test value"],
        )
    return out


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


@dataclass(frozen=True)
class FieldValue:
    """One attribute value with where it came from; the newest by event time wins."""

    field: str
    value: object
    time_ms: int
    source: str
    event_id: str

    def order(self) -> tuple[int, str, str]:
        """Newest wins; ties broken by source and id so arrival order never matters."""
        return (self.time_ms, self.source, self.event_id)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return int(moment.timestamp() * 1000)


def attribute_values(event: object) -> list[FieldValue]:
    """The profile fields an event sets: profile data, consent per purpose, WeChat follow state."""
    ms, src, eid = epoch_ms(event.time), event.source, event.id  # type: ignore[attr-defined]
    if isinstance(event, ProfileEvent):
        d = event.data
        values: dict[str, object] = {
            k: v for k in ("name", "gender", "email", "city") if (v := getattr(d, k)) is not None
        }
        if d.birthday is not None:
            values["birthday"] = d.birthday.isoformat()
        for k, v in d.attributes.items():
            values[f"attributes.{k}"] = v
        return [FieldValue(k, v, ms, src, eid) for k, v in values.items()]
    if isinstance(event, ConsentEvent):
        return [FieldValue(f"consent.{event.data.purpose}", event.data.granted, ms, src, eid)]
    if isinstance(event, FollowEvent):
        return [FieldValue("wechat_following", event.type == "crm.follow", ms, src, eid)]
    return []


def newest(values: list[FieldValue]) -> dict[str, FieldValue]:
    """Per field, the value with the latest event time."""
    out: dict[str, FieldValue] = {}
    for v in values:
        if v.field not in out or v.order() > out[v.field].order():
            out[v.field] = v
    return out


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day of a moment in a store's timezone."""
    return moment.astimezone(zone).date()


def to_minor(amount: Decimal) -> int:
    """Money in fen (exact integer) for storage and sums."""
    return int((amount * 100).to_integral_exact())


def from_minor(minor: int) -> Decimal:
    """Fen back to a two-place decimal."""
    return (Decimal(minor) / 100).quantize(Decimal("0.01"))


def home_store(store_days: list[tuple[str, int, str]]) -> str | None:
    """The store with most purchase days; ties go to the most recent day, then the lowest id."""
    if not store_days:
        return None
    ranked = sorted(store_days, key=lambda s: s[0])
    ranked.sort(key=lambda s: (s[1], s[2]), reverse=True)
    return ranked[0][0]


def dumps(value: object) -> str:
    """Compact JSON for stored values."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
