"""Identity rules for an incoming event: validate it once, refuse what the deployment does not take, and
clean its identifiers (normalised phone, placeholders dropped)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.contract.events import (
    ChannelEvent,
    ChannelEventBase,
    Identifiers,
    InvalidEvent,
    PurchaseEvent,
    non_member,
    parse_event,
)
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


def clean_identity(identity: Identifiers, rules: Cleaning) -> list[Ident]:
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
    if kind != "phone":
        return False
    digits = {ch for ch in value if ch.isdigit()}
    return len(digits) == 1 and set(value) <= digits | {" ", "-"}


@dataclass(frozen=True)
class Prepared:
    """A channel event that passed validation, with its cleaned identifiers (none: a non-member's sale)."""

    event: ChannelEvent
    idents: list[Ident]
    payload: str  # the event as validated, JSON: what the timeline keeps and the other services receive


def prepare(raw: bytes | dict, cleaning: Cleaning) -> Prepared:
    """Validate one event (JSON bytes as consumed, or the dict an HTTP body held) and clean its
    identifiers, or raise InvalidEvent. The one place an event is parsed and validated."""
    event = parse_event(raw)
    check_currency(event, cleaning)
    # A non-member's sale (issue 15) has no identifier to clean: it resolves to no customer.
    idents = [] if non_member(event) else clean_identity(event.data.identity, cleaning)
    # Serialised here, before the batch takes the store's write lock.
    return Prepared(event, idents, event.model_dump_json())
