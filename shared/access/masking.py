"""Masking by field: what every service's views show of personal data unless an admin asks to reveal it.

One module, so that a phone, a name, a birthday, an e-mail or a piece of free text reads the same in
every route of every service. The rules (see the README, "Audit, masking and retention"):

- phone: ``138****8000`` (the first three and last four digits, as receipts print them) from eleven digits
  on, the last four only from eight to ten (``****4567``), fewer below: never fewer than four digits hidden;
- name: the first character (``张**``);
- e-mail: first character of the local part and the domain (``z***@example.com``); a local part that
  is mostly digits (``13512340001@163.com``, a phone used as an address) shows none of it (``***@163.com``);
- birthday: the month only (``****-03-**``): enough for a birthday greeting, not to identify anyone;
- free text (complaint text, survey comments, notes, ``attributes.custom``, extra identity keys, fields a
  channel adds to an event): every phone-like run of digits (separated by spaces, dots, dashes, slashes,
  underscores, asterisks or commas, Arabic or Chinese digits), e-mail address and date (numeric, with
  English month names, Chinese 年月日) inside it masked,
  then cut to :data:`TEXT_SHOWN` characters. A store manager reads what the complaint is about; the
  whole text, unmasked, is for an admin who reveals it (and that read is audited).

Walking unknown JSON: a key the contract names keeps its value (money, ids, SKUs); everything else is
free text. Numbers long enough to be a phone are masked too (a phone sent as a JSON number).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from shared.privacy import HIDDEN_MIN, mask_digits, mask_name, mask_phone, replace_phones

TEXT_SHOWN = 80
_ELLIPSIS = "…"

# A date in the notations people type: 1985-03-12, 1985/3/12, 1985.03.12, 12/03/1985, 85-03-12, 1985年3月12日,
# 3月12日, 一九八五年三月十二日, March 12, 1985, 12 Mar 1985, 12th of March: birthdays are written every way.
_CN = "〇一二三四五六七八九零"
_CN_NUM = f"[{_CN}十两]"
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
          r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = re.compile(
    r"(?<!\d)(?:\d{4}\s*[-/.]\s*\d{1,2}\s*[-/.]\s*\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}|\d{2}[-/.]\d{2}[-/.]\d{2})(?!\d)"
    r"|(?:(?<!\d)\d{2,4}\s*年\s*)?(?<!\d)\d{1,2}\s*月\s*\d{1,2}\s*[日号]?"
    rf"|(?:{_CN_NUM}{{2,4}}\s*年\s*)?{_CN_NUM}{{1,2}}\s*月\s*{_CN_NUM}{{1,3}}\s*[日号]"
    rf"|\b{_MONTH}\s+{_DAY}\b(?:,?\s*(?:\d{{4}}|'?\d{{2}})(?!\d))?"
    rf"|(?<!\d){_DAY}\s+(?:of\s+)?{_MONTH}(?![a-z])(?:,?\s*(?:\d{{4}}|'?\d{{2}})(?!\d))?",
    re.IGNORECASE)
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# Digits (Arabic, fullwidth or Chinese: 一三五一二三四零零零一) grouped by the separators numbers are written
# with (spaces, dots, dashes, slashes, brackets, underscores, asterisks, commas); seven or more may be a phone.
_D = rf"[\d{_CN}]"
_DIGITS = re.compile(rf"(?<![\d{_CN}])\+?\(?{_D}(?:[\s().\-/_*,，]{{0,3}}{_D})*")
_MIN_PHONE_DIGITS = 7
_AMOUNT = re.compile(r"\d+\.\d{1,2}")  # money (12345.60): no phone is written with two decimals

PHONE_KEYS = frozenset({"phone", "mobile", "tel", "telephone", "cellphone", "mobile_phone"})
NAME_KEYS = frozenset({"name", "full_name", "first_name", "last_name", "nickname", "real_name", "contact_name"})
EMAIL_KEYS = frozenset({"email", "e_mail", "mail"})
BIRTHDAY_KEYS = frozenset({"birthday", "birthdate", "birth_date", "date_of_birth", "dob"})
# Identifiers that name no one outside the platform's own systems: shown (digits inside still masked).
ID_KEYS = frozenset({"wechat_openid", "wechat_unionid", "member_id", "web_user_id", "anonymous_id"})
# Fields of the channel events' contract that carry no personal data: shown, any long number inside masked.
CONTRACT_KEYS = frozenset({"order_id", "amount", "currency", "store_id", "items", "sku", "category", "quantity",
                           "unit_price", "purpose", "granted", "score", "severity", "covers", "status", "touch_id",
                           "gender", "city", "product"})
# The company's own codes (a store, an article): numeric store codes and EAN-13 barcodes are long digit runs
# that name no one, and a store manager matches them against the till, so only a phone inside is masked.
CODE_KEYS = frozenset({"store_id", "sku"})


def phone(value: Any) -> str | None:
    """A phone (E.164 or as sent) masked: ``138****8000``, at least four digits hidden whatever its length."""
    if value is None or value == "":
        return None
    text = str(value)
    if text.startswith("+"):
        return mask_phone(text)
    digits = re.sub(r"\D", "", text)
    if not digits:
        return "****"
    return mask_digits(digits[-11:] if len(digits) > 11 else digits)


def name(value: Any) -> str | None:
    """A person's name masked: its first character."""
    return mask_name(str(value)) if value not in (None, "") else value


def email(value: Any) -> str | None:
    """An e-mail masked; a local part that is mostly digits (a phone as an address) is hidden whole."""
    if value in (None, ""):
        return value
    local, _, domain = str(value).partition("@")
    if not domain:
        return text(local)
    digits = sum(ch.isdigit() for ch in local)
    shown = "" if digits >= 4 or digits * 2 >= len(local) else local[:1]
    return f"{shown}***@{domain}"


def birthday(value: Any) -> str | None:
    """A birthday masked to its month: ``****-03-**``."""
    if value in (None, ""):
        return value
    found = re.match(r"^\d{4}-(\d{2})-\d{2}", str(value))
    return f"****-{found.group(1)}-**" if found else "****"


def _last_four(run: str) -> str:
    # The run's digits as written (Chinese stay Chinese), all hidden but the last four, and never fewer than
    # HIDDEN_MIN hidden: ``*******0001``, ``*******零零零一``, ``****567``.
    digits = [ch for ch in run if ch.isdigit() or ch in _CN]
    shown = min(4, max(0, len(digits) - HIDDEN_MIN))
    return "*" * (len(digits) - shown) + "".join(digits[len(digits) - shown:])


def _digit_count(run: str) -> int:
    return sum(ch.isdigit() or ch in _CN for ch in run)


def _digits(found: re.Match) -> str:
    run = found.group(0)
    if _digit_count(run) < _MIN_PHONE_DIGITS or _AMOUNT.fullmatch(run.strip()):
        return run
    return _last_four(run)


def scrub(value: str, names: tuple[str, ...] = ()) -> str:
    """Every e-mail, date and phone-like number inside a text masked, and the person's own ``names``
    (nothing cut)."""
    if names:
        value = _names_pattern(names).sub(lambda m: name(m.group(0)) or "*", value)
    value = _EMAIL.sub(lambda m: email(m.group(0)) or "***", value)
    value = _DATE.sub("****-**-**", value)
    # Any run of seven digits or more (a phone in any notation, one no region's plan knows, an id card
    # number); then what the redactor's phone detector finds besides (``135－1234－0001``, ``+1 650 253 0000``).
    value = _DIGITS.sub(_digits, value)
    return replace_phones(value, _last_four)


# In an id (an order number, a source path, an event id) every run of seven digits or more, a number written
# with its country code and spaces (``+852 9123 4567``), and a Chinese mobile in any notation: ids are shown
# to trace an event, a reader needs none of their long numbers.
_PHONE_IN_ID = re.compile(r"(?<!\d)(?:(?:\+|00)?86[ \-._*,]?)?1[3-9]\d(?:[ \-._*,]?\d){8}(?!\d)"
                          r"|\+\d(?:[ \-.()]{0,2}\d){6,16}(?!\d)|\d{7,}")


_HEX_TOKEN = re.compile(r"[0-9a-fA-F]{16,}")


def scrub_id(value: str) -> str:
    """An identifier with any e-mail, phone or other run of seven digits or more inside it masked (digits of a
    random hex token the platform made, ``rd_8c1101d1e5ec44f8945f``, are no phone and stay)."""
    value = _EMAIL.sub(lambda m: email(m.group(0)) or "***", value)
    hexes = [(h.start(), h.end()) for h in _HEX_TOKEN.finditer(value) if not h.group(0).isdigit()]

    def masked(found: re.Match) -> str:
        run = found.group(0)
        if run.isdigit() and not _CN_MOBILE.fullmatch(run) and any(
                s <= found.start() and found.end() <= e for s, e in hexes):
            return run
        return _last_four(run)

    return _PHONE_IN_ID.sub(masked, value)


_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_PHONE_IN_CODE = re.compile(_PHONE_IN_ID.pattern.rsplit("|", 1)[0])  # a mobile or a +country number only


def scrub_code(value: str) -> str:
    """A store code or SKU as written (``3101150012``, ``6901234567890``, ``SH-3b84896509``), with only an
    e-mail or a phone (a mainland mobile in any notation, a number with its country code) inside it masked."""
    value = _EMAIL.sub(lambda m: email(m.group(0)) or "***", value)
    return _PHONE_IN_CODE.sub(lambda m: _last_four(m.group(0)), value)


def known_names(values: Any) -> tuple[str, ...]:
    """The forms of a person's names to find in free text: each name whole, and each part of three or more
    letters of a name written with spaces (``Wang Fang``: ``Wang``, ``Fang``)."""
    out: set[str] = set()
    for one in values:
        if isinstance(one, str) and one.strip():
            out.add(one.strip())
            out.update(part for part in one.split() if len(part) >= 3)
    return tuple(sorted(out, key=len, reverse=True))


@lru_cache(maxsize=256)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(rf"(?<!\w){re.escape(n)}(?!\w)" if n.isascii() else re.escape(n) for n in names),
                      re.IGNORECASE)


def text(value: Any, *, limit: int = TEXT_SHOWN, names: tuple[str, ...] = ()) -> Any:
    """Free text as a non-revealing reader sees it: scrubbed (the person's ``names`` too), then cut to
    ``limit`` characters."""
    if not isinstance(value, str):
        return value
    shown = scrub(value, names)
    return shown if len(shown) <= limit else shown[:limit] + _ELLIPSIS


def field(key: str, value: Any, names: tuple[str, ...] = ()) -> Any:
    """One field of unknown JSON masked by what its key says it holds (free text when it says nothing)."""
    k = key.lower()
    if isinstance(value, dict):
        return document(value, names)
    if isinstance(value, list):
        return [field(key, v, names) for v in value]
    if k in PHONE_KEYS or "phone" in k or "mobile" in k:
        return phone(value) if isinstance(value, str | int) and not isinstance(value, bool) else value
    if k in EMAIL_KEYS or "email" in k:
        return email(value) if isinstance(value, str) else value
    if k in NAME_KEYS:
        return name(value) if isinstance(value, str) else value
    if k in BIRTHDAY_KEYS or "birth" in k:
        return birthday(value) if isinstance(value, str) else value
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return _number(value)
    if k in CODE_KEYS and isinstance(value, str):
        return scrub_code(value)
    if k in CONTRACT_KEYS or k in ID_KEYS:
        return scrub_id(value) if isinstance(value, str) else value
    return text(value, names=names)


def _number(value: int) -> int | str:
    return value if abs(value) < 10 ** (_MIN_PHONE_DIGITS - 1) else phone(str(value))


def document(data: dict[str, Any], names: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object (an event's data, custom attributes) with every field masked; ``names`` are the
    person's own names (:func:`known_names`), masked wherever free text mentions them."""
    return {k: field(str(k), v, names) for k, v in data.items()}


def identifier(kind: str, value: str) -> str:
    """An identifier of a customer as a reader sees it (its type says how)."""
    if kind == "phone":
        return phone(value) or ""
    if kind == "email":
        return email(value) or ""
    return scrub_id(value)


def attributes(values: dict[str, Any], names: tuple[str, ...] = ()) -> dict[str, Any]:
    """The single customer view's attributes: profile fields by name, ``custom`` as free text."""
    out = {}
    for k, v in values.items():
        out[k] = document(v, names) if k == "custom" and isinstance(v, dict) else field(k, v, names)
    return out


NOTE_KEYS = frozenset({"reason", "note", "cancel_reason", "acknowledged_note"})
# Ids a channel supplies (its event id, its source path, its order number, and loyalty's ledger entry ids and
# buckets made from them): shown to trace an event, through
# scrub_id, since a channel may build them from a phone (``wx-13512340001-0001``, ``wechat/mp/13512340001``).
TRACE_KEYS = frozenset({"event_id", "source", "order_id", "entry_id", "bucket"})


def withheld(note: str) -> str:
    """What a reader sees of a staff note where the service cannot tell the customer's names in it: that
    there is one, and its length; never a word of it."""
    return f"[note withheld: {len(note)} characters]"


def note(value: str, *, withhold: bool, names: tuple[str, ...] = ()) -> str:
    """A staff note as a caller below admin sees it: scrubbed of the customer's ``names``, phones, e-mails and
    dates, or :func:`withheld` (``withhold``: the service does not know the customer's names)."""
    return withheld(value) if withhold else scrub(value, names)


def notes(data: Any, *, withhold: bool = False, names: tuple[str, ...] = ()) -> Any:
    """A response with every staff note in it (``reason``, ``note``…) masked by :func:`note`, and every
    channel-supplied id in it (``event_id``, ``source``, ``order_id``) by :func:`scrub_id`."""
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            if k in NOTE_KEYS and isinstance(v, str):
                out[k] = note(v, withhold=withhold, names=names)
            elif k in TRACE_KEYS and isinstance(v, str):
                out[k] = scrub_id(v)
            else:
                out[k] = notes(v, withhold=withhold, names=names)
        return out
    if isinstance(data, list):
        return [notes(v, withhold=withhold, names=names) for v in data]
    return data
