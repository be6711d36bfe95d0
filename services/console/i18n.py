"""Messages and formats: Babel catalogues read from the committed .po files at start-up (compiled in memory),
the request's locale in a context variable, dates in the store's zone and money in CNY."""

from __future__ import annotations

import io
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
LOCALES = {"zh_Hans_CN": "zh-Hans-CN", "en": "en"}  # catalogue folder -> the page's lang attribute
DEFAULT = "zh_Hans_CN"
LANG_COOKIE = "crm_lang"

_current: ContextVar[str] = ContextVar("console_locale", default=DEFAULT)


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for extraction, translate later"
    """Mark a message for the catalogues without translating it here (labels kept in tables)."""
    return message


@cache
def translations(locale: str) -> Translations:
    """The catalogue of ``locale``, compiled from its .po file once per process."""
    with open(LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalog = read_po(f, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf, domain="messages")


def pick(value: str | None) -> str:
    """The supported locale named by a cookie or form value, else the default (Simplified Chinese)."""
    return value if value in LOCALES else DEFAULT


def use(locale: str) -> None:
    """Make ``locale`` the current request's."""
    _current.set(pick(locale))


def current() -> str:
    """The current request's locale."""
    return _current.get()


def _(message: str, **values: object) -> str:
    """``message`` in the current locale, with ``%(name)s`` placeholders filled from ``values``."""
    text = translations(current()).gettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, n: int, **values: object) -> str:
    """The singular or plural of a message in the current locale."""
    text = translations(current()).ngettext(singular, plural, n)
    return text % {"num": n, **values}


def money(value: str | Decimal | None) -> str:
    """A decimal string as CNY in the current locale (¥1,234.50); a dash when absent."""
    if value in (None, ""):
        return "–"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return format_currency(amount, "CNY", locale=Locale.parse(current()))


def number(value: float | int | None, digits: int = 0) -> str:
    """A number in the current locale's grouping."""
    if value is None:
        return "–"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=Locale.parse(current()))


def when(value: str | datetime | None, zone: ZoneInfo) -> str:
    """An ISO moment in ``zone`` (the store's, Asia/Shanghai by default), in the locale's medium format."""
    if not value:
        return "–"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return format_datetime(moment, format="medium", tzinfo=zone, locale=Locale.parse(current()))
