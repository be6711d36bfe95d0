"""Issue 16: every message of the console's templates and Python is translated in both catalogues, with the
same placeholders, so no page shows a message in the wrong language or a broken one."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from services.console.i18n import LOCALE_DIR, LOCALES
from tests.e2e.console.catalogue import extracted

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.mark.parametrize("locale", sorted(LOCALES))
def test_every_message_has_a_translation_with_the_same_placeholders(locale):
    with open(LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po", "rb") as f:
        catalogue = read_po(f, locale=locale)
    messages = extracted()
    assert len(messages) > 100  # the extractors found the templates' messages, not only the Python ones
    missing = sorted(m for m in messages if not (catalogue.get(m) and catalogue.get(m).string))
    assert missing == [], f"{locale} lacks: {missing}"
    broken = sorted(m for m in messages
                    if sorted(PLACEHOLDER.findall(m)) != sorted(PLACEHOLDER.findall(catalogue.get(m).string)))
    assert broken == []


def test_chinese_is_the_default_and_english_translates_to_itself():
    from services.console import i18n

    assert i18n.pick(None) == i18n.pick("fr") == "zh_Hans_CN"
    i18n.use("zh_Hans_CN")
    assert i18n._("Sign in") == "登录" and i18n.money("1234.5") == "¥1,234.50"
    i18n.use("en")
    assert i18n._("Sign in") == "Sign in" and i18n.money("1234.5") == "CN¥1,234.50"
