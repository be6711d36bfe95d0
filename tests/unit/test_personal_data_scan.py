"""The end-to-end privacy scan: a phone is found as a whole number in any notation, and only so."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import PersonalData

PHONE = "13877082117"
SCAN = PersonalData([PHONE, "13900001111"], dates=["1985-03-12"], texts=['Customer 7"'])


@pytest.mark.parametrize("text", [
    f"phone={PHONE}", "138 7708 2117", "138-7708-2117", "138.7708.2117", "+86 138 7708 2117", "+8613877082117",
    "0086 138 7708 2117", f"0086{PHONE}", "86-138-7708-2117", f'{{"phone":"{PHONE}"}}', f"at 2026-06-01 {PHONE}",
    f"x{PHONE}y", "1 3 8 7 7 0 8 2 1 1 7",
])
def test_a_scenario_phone_is_found_in_any_notation(text):
    found = SCAN.search(text)
    assert found is not None
    assert "".join(ch for ch in found.group(0) if ch.isdigit()).endswith(PHONE)


@pytest.mark.parametrize("text", [
    '"start_ns":1796213877082117404',  # the flaky failure: a phone's digits inside a span's timestamp
    f"9{PHONE}", f"{PHONE}0", "138 7708 21170", "1138-7708-2117", f"87{PHONE}", "13877082118", "1387708211",
    f"{PHONE[:6]} {PHONE[6:]}9",
])
def test_digits_of_a_phone_inside_a_longer_number_are_not_a_phone(text):
    assert SCAN.search(text) is None


def test_birthdays_and_names_are_found_but_not_inside_a_longer_number():
    assert SCAN.search('{"birthday":"1985-03-12"}').group(0) == "1985-03-12"
    assert SCAN.search('"name":"Customer 7"').group(0) == 'Customer 7"'
    assert SCAN.search("11985-03-123") is None
    assert SCAN.search('"name":"Customer 70"') is None


def test_the_first_piece_in_the_text_is_the_one_reported():
    assert SCAN.search("born 1985-03-12, phone 139 0000 1111").group(0) == "1985-03-12"
    assert SCAN.search("phone 139-0000-1111, born 1985-03-12").group(0) == "139-0000-1111"
