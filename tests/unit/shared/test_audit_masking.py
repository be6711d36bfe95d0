"""Masking by field (shared/access/masking.py): what a reader sees of each kind of personal data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.access import masking
from shared.access.audit import entry
from shared.access.http import check_reveal
from shared.http.errors import Forbidden
from shared.http.guard import Caller
from tests.e2e.helpers import PersonalData

SCAN = PersonalData(["13512340001", "13800138000"], dates=["1985-03-12"], texts=["Wang Fang"])


@pytest.mark.parametrize("written", ["+8613512340001", "13512340001", "135 1234 0001", "135-1234-0001",
                                     "135.1234.0001", "0086 135 1234 0001", "+86 (135) 1234-0001"])
def test_a_phone_in_any_notation_shows_its_first_three_and_last_four_digits_at_most(written):
    shown = masking.phone(written)
    assert shown == "135****0001"
    assert SCAN.search(shown) is None


def test_names_emails_and_birthdays_are_masked_by_field():
    assert masking.name("Wang Fang") == "W********"
    assert masking.name("张伟") == "张*"
    assert masking.email("zhang.wei@example.com") == "z***@example.com"
    # A phone used as an address shows none of the local part: no digit of the phone survives.
    assert masking.email("13512340001@163.com") == "***@163.com"
    assert masking.birthday("1985-03-12") == "****-03-**"
    assert masking.birthday("12 March") == "****"
    assert [masking.phone(None), masking.name(None), masking.email(None), masking.birthday(None)] == [None] * 4


def test_free_text_has_phones_emails_and_dates_masked_and_is_cut_to_eighty_characters():
    text = "Rude staff. Call 135.1234.0001 or mail 13512340001@163.com, born 1985-03-12. Paid 10000.00"
    shown = masking.text(text)
    assert shown == "Rude staff. Call *******0001 or mail ***@163.com, born ****-**-**. Paid 10000.00"
    assert SCAN.search(shown) is None
    long = "x" * 81
    assert masking.text(long) == "x" * 80 + "…"
    assert masking.text("short") == "short"


def test_unknown_json_is_masked_by_key_and_free_text_rules_while_contract_fields_stay():
    data = {"identity": {"phone": "13512340001", "email": "13512340001@163.com", "member_id": "M-7",
                         "mobile_backup": "138 0013 8000"},
            "order_id": "T-9", "amount": "12.50", "items": [{"sku": "SK-1", "quantity": 2}],
            "name": "Wang Fang", "birthday": "1985-03-12", "text": "call me on 13800138000",
            "custom_note": 13800138000, "attributes": {"hobby": "tea", "old_phone": "13800138000"}}
    shown = masking.document(data)
    assert shown == {
        "identity": {"phone": "135****0001", "email": "***@163.com", "member_id": "M-7",
                     "mobile_backup": "138****8000"},
        "order_id": "T-9", "amount": "12.50", "items": [{"sku": "SK-1", "quantity": 2}],
        "name": "W********", "birthday": "****-03-**", "text": "call me on *******8000",
        "custom_note": "138****8000", "attributes": {"hobby": "tea", "old_phone": "138****8000"}}
    assert SCAN.search(repr(shown)) is None


def test_only_an_admin_may_reveal():
    admin, reader = Caller("key_a", "admin"), Caller("key_r", "reader")
    assert check_reveal(admin, True) is True and check_reveal(admin, False) is False
    assert check_reveal(reader, False) is False
    with pytest.raises(Forbidden) as refused:
        check_reveal(reader, True)
    assert refused.value.code == "reveal_forbidden"


def test_an_audit_entry_keeps_no_personal_data_from_the_reason_it_was_given():
    one = entry(Caller("key_a", "admin"), service="identity", action="reveal.customer",
                at=datetime(2026, 6, 1, tzinfo=UTC), customer_id="c_1",
                reason="customer 135 1234 0001 (13512340001@163.com) asked, born 1985-03-12")
    assert one.reason == "customer *******0001 (***@163.com) asked, born ****-**-**"
    assert (one.actor, one.role, one.scope, one.at) == ("key_a", "admin", "company", "2026-06-01T00:00:00.000000Z")
    assert SCAN.search(repr(one)) is None
