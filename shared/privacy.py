"""Phone normalisation, keyed pseudonyms and masking: how personal data stays out of sight."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
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
    # A number of a mobile type is a valid number (both match the number against its region's patterns, and a
    # region's calling code is the number's: tests/unit/shared/test_privacy.py checks it for every region), so
    # the patterns are matched once (issue 14: an import parses a phone per new member); validity is asked
    # only to say why a number is refused.
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        if not phonenumbers.is_valid_number(number):
            raise PhoneError("phone is not a valid number")
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
    """``138****8000`` from ``+8613800138000``: enough for staff to confirm, not to dial (see :func:`mask_digits`)."""
    if not e164:
        return None
    try:
        national = str(phonenumbers.parse(e164).national_number)
    except NumberParseException:
        return "****"
    return mask_digits(national)


HIDDEN_MIN = 4  # digits a masked phone always hides: 10,000 guesses, against the lookup's miss budget


def mask_digits(digits: str) -> str:
    """A phone's national digits masked, at least :data:`HIDDEN_MIN` of them hidden whatever the length: the
    first three and last four from eleven digits on (``138****8000``), the last four from eight to ten
    (``****4567``), fewer for shorter numbers (``****567``), none below five."""
    n = len(digits)
    if n >= 11:
        return f"{digits[:3]}{'*' * (n - 7)}{digits[-4:]}"
    shown = min(4, max(0, n - HIDDEN_MIN))
    return "*" * (n - shown) + digits[n - shown:]


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
        # Keyed once: a copy per pseudonym skips the key set-up hmac.new repeats (issue 13, identity's hot
        # path computes several per event); the digest is the same.
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)

    def __call__(self, kind: str, value: str, length: int = 20) -> str:
        """The pseudonym of one identifier, e.g. ``p("phone", "+8613800138000")``."""
        mac = self._keyed.copy()
        mac.update(f"{kind}:{value}".encode())
        return mac.hexdigest()[:length]


# Regions whose phones the last guard recognises written nationally (without a country code); a number
# written with one (``+852 …``, ``00852 …``) is recognised whatever its region. These are the places
# customers of a Chinese chain come from: mainland, Hong Kong, Macau, Taiwan, Singapore, Malaysia, and
# the US, Japan, Korea, the UK and Australia.
REDACT_REGIONS = ("CN", "HK", "MO", "TW", "SG", "MY", "US", "JP", "KR", "GB", "AU")
# A whole run of digits long enough to be a phone (7 to 17 digits, separators between groups, no ASCII
# letter or digit on either side); text without one cannot hold a phone, so most log lines and span
# attributes (hex ids, ISO timestamps, short numbers) skip the matcher entirely.
# The separators are those ``phonenumbers`` reads inside a number: besides . - / ( ) and spaces, the dashes,
# slashes, dots and brackets of Chinese and Japanese input methods (``135－1234－0001``, ``135–1234–0001``).
_MAYBE_PHONE = re.compile(r"(?<![A-Za-z0-9])\d(?:[\s().\-/\u00ad\u200b\u2060\u2010-\u2015\u2212\u30fc\uff0d-\uff0f"
                          r"\uff08\uff09\uff3b\uff3d\[\]]{0,3}\d){6,16}(?![A-Za-z0-9])")
# A long digit run glued to a letter no hex id has (``tel13512340001``): worth the matcher too.
_GLUED_PHONE = re.compile(r"[g-zG-Z]\d{7}|\d{7}[g-zG-Z]")
_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")


def phone_spans(text: str) -> tuple[tuple[int, int], ...]:
    """Where the phone numbers in free text are, ``(start, end)`` in order (overlapping finds joined): what
    ``phonenumbers`` finds as a whole number that is a valid mobile or fixed-line number of one of
    ``REDACT_REGIONS`` or carries a country code, in any notation. The one phone detector behind the log
    redactor and the masking of free text; digits inside longer numbers (timestamps, ids) are no phone."""
    if not _MAYBE_PHONE.search(text) and not _GLUED_PHONE.search(text):
        return ()
    return _phone_spans(text)


@lru_cache(maxsize=8192)
def _phone_spans(text: str) -> tuple[tuple[int, int], ...]:
    spans: set[tuple[int, int]] = set()
    for region in REDACT_REGIONS:
        # POSSIBLE finds numbers next to Chinese text too; validity and whole-number edges are checked below.
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            if _is_real_number(text, match):
                spans.add((match.start, match.end))
    joined: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if joined and start < joined[-1][1]:  # overlapping finds of two regions: one number
            joined[-1] = (joined[-1][0], max(end, joined[-1][1]))
        else:
            joined.append((start, end))
    return tuple(joined)


def replace_phones(text: str, by: Callable[[str], str]) -> str:
    """``text`` with each phone :func:`phone_spans` finds replaced by ``by(the phone as written)``."""
    out, last = [], 0
    for start, end in phone_spans(text):
        out.append(text[last:start] + by(text[start:end]))
        last = end
    return "".join(out) + text[last:] if out else text


def redact_digits(text: str) -> str:
    """Replace every phone number in free text, of any region and in any notation (a last guard for logs,
    spans and notes): each one :func:`phone_spans` finds."""
    return replace_phones(text, lambda _: "[redacted]")


def _is_real_number(text: str, match) -> bool:
    # A whole number: no digit right before or after (timestamps and longer numbers stay), and not inside a
    # hex token (ids, pseudonyms, hashes); letters glued to it (``tel13512340001``) and Chinese text around
    # it (``电话13512340001``) do not protect a phone.
    before = text[match.start - 1] if match.start else ""
    after = text[match.end] if match.end < len(text) else ""
    if before.isdigit() or after.isdigit():
        return False
    if _word(before) or _word(after):
        start, end = match.start, match.end
        while start and _word(text[start - 1]):
            start -= 1
        while end < len(text) and _word(text[end]):
            end += 1
        if all(ch in _HEX for ch in text[start:end]):
            return False
    number = match.number
    if not phonenumbers.is_valid_number(number):
        return False
    return phonenumbers.number_type(number) in _REDACT_TYPES


def _word(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


_HEX = frozenset("0123456789abcdefABCDEF")


_REDACT_TYPES = _MOBILE_TYPES | {PhoneNumberType.FIXED_LINE}


def redact_emails(text: str) -> str:
    """Replace every e-mail address in free text."""
    return _EMAIL.sub("[email]", text) if "@" in text else text


def redact(text: str) -> str:
    """The last guard for log lines and span attributes: phones of any region in any notation, e-mails."""
    return redact_digits(redact_emails(text))
