"""Phone normalisation, keyed pseudonyms and masking: how personal data stays out of sight."""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
_SEQUENCES = ("0123456789", "1234567890", "9876543210")


class PhoneError(ValueError):
    """A phone that cannot be used; the message never contains the number."""


def normalize_phone(raw: str, region: str = "CN", blocked: frozenset[str] = frozenset()) -> str:
    """The E.164 form of a mobile number in any common notation, or PhoneError."""
    # Spaces and dashes only group digits; without them `138 0013 8000` and `138-0013-8000` share
    # one cache entry (parsing is slow and the same customer's phone arrives again and again).
    return _normalize(_SEPARATORS.sub("", raw), region, blocked)


_SEPARATORS = re.compile(r"[\s\-]+")


@lru_cache(maxsize=200_000)
def _normalize(text: str, region: str, blocked: frozenset[str]) -> str:
    if not text:
        raise PhoneError("phone is empty")
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise PhoneError("phone is not a number in a known notation") from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("phone is not a valid number")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise PhoneError("phone is not a mobile number")
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if is_placeholder_phone(e164) or e164 in _normalized_blocklist(blocked, region):
        raise PhoneError("phone is a blocked placeholder or test number")
    return e164


def is_placeholder_phone(e164: str) -> bool:
    """Numbers staff type when the customer gives none: a run of one digit or a counting sequence."""
    national = e164[-8:]
    return len(set(national)) == 1 or any(national in seq for seq in _SEQUENCES)


@lru_cache(maxsize=16)
def _normalized_blocklist(blocked: frozenset[str], region: str) -> frozenset[str]:
    out = set()
    for raw in blocked:
        try:
            num = phonenumbers.parse(raw, region)
        except NumberParseException:
            continue
        out.add(phonenumbers.format_number(num, PhoneNumberFormat.E164))
    return frozenset(out)


def mask_phone(e164: str | None) -> str | None:
    """``138****8000`` from ``+8613800138000``: enough for staff to confirm, not to dial."""
    if not e164:
        return None
    try:
        national = str(phonenumbers.parse(e164).national_number)
    except NumberParseException:
        return "****"
    if len(national) < 8:
        return "*" * len(national)
    return f"{national[:3]}{'*' * (len(national) - 7)}{national[-4:]}"


def mask_email(email: str | None) -> str | None:
    """``z***@example.com``."""
    if not email:
        return email
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def mask_name(name: str | None) -> str | None:
    """First character only, as Chinese service desks do (``张**``)."""
    if not name:
        return name
    return name[0] + "*" * max(1, len(name) - 1)


class Pseudonymizer:
    """HMAC-SHA256 pseudonyms: stable per value and key, not reversible without the key."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __call__(self, kind: str, value: str, length: int = 20) -> str:
        """The pseudonym of one identifier, e.g. ``p("phone", "+8613800138000")``."""
        digest = hmac.new(self._secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
        return digest[:length]


# A Chinese mobile number in any common notation, optionally with the country code.
_MOBILE = re.compile(r"(?<!\d)(?:(?:\+|00)?86[ \-]?)?1[3-9]\d(?:[ \-]?\d){8}(?!\d)")


def redact_digits(text: str) -> str:
    """Replace anything that looks like a mobile number in free text (a last guard for logs and spans)."""
    return _MOBILE.sub("[redacted]", text)
