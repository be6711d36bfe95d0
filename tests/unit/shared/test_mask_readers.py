"""What a reader sees of phones, dates and ids (issue 12 review, D1, D2, D5): never enough to recover them."""

from __future__ import annotations

import pytest

from shared.access import masking
from shared.privacy import mask_phone


def _hidden(shown: str) -> int:
    return shown.count("*")


@pytest.mark.parametrize(("e164", "shown"), [
    ("+8613800138000", "138****8000"),  # mainland, 11 digits: as receipts print it
    ("+85291234567", "****4567"),  # Hong Kong, 8 digits
    ("+85366123456", "****3456"),  # Macau, 8 digits
    ("+6581234567", "****4567"),  # Singapore, 8 digits
    ("+886912345678", "*****5678"),  # Taiwan, 9 digits
    ("+16502530000", "******0000"),  # US, 10 digits
])
def test_a_masked_phone_hides_at_least_four_digits_whatever_its_length(e164, shown):
    assert mask_phone(e164) == shown
    assert masking.phone(e164) == shown  # one implementation behind both
    assert _hidden(shown) >= 4


@pytest.mark.parametrize(("written", "shown"), [
    ("91234567", "****4567"), ("9123 4567", "****4567"), ("1234567", "****567"), ("12345", "****5"),
    ("1234", "****"), ("138 0013 8000", "138****8000"), ("0086 135 1234 0001", "135****0001"),
])
def test_a_phone_field_without_country_code_hides_at_least_four_digits(written, shown):
    assert masking.phone(written) == shown
    assert masking.document({"identity": {"mobile_backup": written}}) == {"identity": {"mobile_backup": shown}}


def test_a_seven_digit_run_in_free_text_hides_four_of_them():
    assert masking.text("home 1234567") == "home ****567"


@pytest.mark.parametrize(("text", "shown"), [
    ("call 135_1234_0001", "call *******0001"),
    ("call 135*1234*0002", "call *******0002"),
    ("call 135,1234,0001", "call *******0001"),
    ("call 135，1234，0001", "call *******0001"),
    ("电话一三五一二三四零零零一", "电话*******零零零一"),
    ("电话 一三五 一二三四 〇〇〇一", "电话 *******〇〇〇一"),
    ("电话一三五-一二三四-零零零一谢谢", "电话*******零零零一谢谢"),
])
def test_phones_in_every_notation_are_masked_in_free_text(text, shown):
    assert masking.text(text) == shown


@pytest.mark.parametrize("date", [
    "March 12, 1985", "Mar 12 1985", "12 Mar 1985", "12 March, 1985", "12th of March 1985", "mar. 12, '85",
    "85-03-12", "12/03/85", "1985-03-12", "1985/3/12", "12/03/1985", "1985年3月12日", "85年3月12日", "3月12日",
    "一九八五年三月十二日", "三月十二号",
])
def test_written_out_dates_are_masked_in_free_text(date):
    shown = masking.text(f"born {date}, VIP")
    assert shown == "born ****-**-**, VIP"


def test_words_and_amounts_that_are_no_date_or_phone_stay():
    text = "You may 2x the points; paid 10000.00 for 3 items at 12:30 in March"
    assert masking.text(text) == text


@pytest.mark.parametrize(("value", "shown"), [
    ("+852 9123 4567", "*******4567"),
    ("85291234567", "*******4567"),
    ("wx-13512340001-0001", "wx-*******0001-0001"),
    ("wechat/mp/13512340001", "wechat/mp/*******0001"),
    ("M-135_1234_0001", "M-*******0001"),
    ("pos/S01", "pos/S01"), ("M-7", "M-7"), ("e-2026-0001", "e-2026-0001"),
    ("rd_8c1101d1e5ec44f8945f", "rd_8c1101d1e5ec44f8945f"), ("rd_8c11019924565d4f8945", "rd_8c11019924565d4f8945"),
    ("p:pos/SH-001:wx-13512340001-1|base|1", "p:pos/SH-001:wx-*******0001-1|base|1"),
])
def test_scrub_id_masks_every_long_number_inside_an_id(value, shown):
    assert masking.scrub_id(value) == shown


def test_an_id_key_in_a_payload_shows_no_phone():
    data = {"identity": {"member_id": "+852 9123 4567", "web_user_id": "85291234567"}}
    assert masking.document(data) == {"identity": {"member_id": "*******4567", "web_user_id": "*******4567"}}


@pytest.mark.parametrize(("value", "shown"), [
    ("SH-3b84896509", "SH-3b84896509"), ("3101150012", "3101150012"), ("6901234567890", "6901234567890"),
    ("SH-001", "SH-001"), ("S-13512340001", "S-*******0001"), ("+852 9123 4567", "*******4567"),
    ("shop-135.1234.0001", "shop-*******0001"), ("13512340001@163.com", "***@163.com"),
])
def test_a_store_code_or_sku_is_shown_as_the_till_prints_it_but_a_phone_inside_is_masked(value, shown):
    # A random store id once held eight digits in a row (SH-3b84896509) and a reader saw SH-3b****6509.
    assert masking.document({"store_id": value, "items": [{"sku": value}]}) == {
        "store_id": shown, "items": [{"sku": shown}]}
