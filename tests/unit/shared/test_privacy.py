"""Phone normalisation, placeholders, masking, pseudonyms and the last-guard redaction of free text."""

from __future__ import annotations

import pytest

from shared.privacy import (
    PhoneError,
    Pseudonymizer,
    is_placeholder_phone,
    mask_email,
    mask_name,
    mask_phone,
    normalize_phone,
    redact_digits,
)

NOTATIONS = ["13800138000", "138-0013-8000", "+86 138 0013 8000", "008613800138000", "138 0013 8000",
             "+8613800138000", "0086 138 0013 8000", "+86-138-0013-8000", "(+86) 138 0013 8000"]


@pytest.mark.parametrize("notation", NOTATIONS)
def test_every_common_notation_is_one_e164_number(notation):
    assert normalize_phone(notation) == "+8613800138000"


def test_the_default_region_decides_numbers_written_without_a_country_code():
    assert normalize_phone("8123 4567", "SG") == "+6581234567"
    assert normalize_phone("+65 8123 4567", "CN") == "+6581234567"


@pytest.mark.parametrize(("raw", "message"), [
    ("", "phone is empty"),
    ("   ", "phone is empty"),
    ("not a phone", "phone is not a number in a known notation"),
    ("12345", "phone is not a valid number"),
    ("021 6888 8888", "phone is not a mobile number"),  # a Shanghai landline
    ("13800000000", "phone is a blocked placeholder or test number"),
    ("13812345678", "phone is a blocked placeholder or test number"),
])
def test_an_unusable_phone_says_why_without_the_number(raw, message):
    with pytest.raises(PhoneError) as bad:
        normalize_phone(raw)
    assert str(bad.value) == message


def test_configured_blocked_phones_match_in_any_notation():
    blocked = frozenset({"139-1234-5670", "+86 137 0000 1111"})
    for raw in ("13912345670", "+86 139 1234 5670", "0086 137 0000 1111"):
        with pytest.raises(PhoneError, match="blocked"):
            normalize_phone(raw, "CN", blocked)
    assert normalize_phone("13912345671", "CN", blocked) == "+8613912345671"


@pytest.mark.parametrize(("e164", "placeholder"), [
    ("+8613800000000", True), ("+8613911111111", True), ("+8613801234567", True), ("+8613812345678", True),
    ("+8613898765432", True), ("+8613823456789", True), ("+8613800138000", False), ("+8613912345670", False),
])
def test_placeholder_phones_are_runs_of_one_digit_or_counting_sequences(e164, placeholder):
    assert is_placeholder_phone(e164) is placeholder


def test_masking_keeps_enough_to_confirm_and_not_enough_to_dial():
    assert mask_phone("+8613800138000") == "138****8000"
    assert mask_phone("+6581234567") == "****4567"  # at least four digits hidden whatever the length
    assert mask_phone("+85291234567") == "****4567"
    assert (mask_phone(None), mask_phone(""), mask_phone("garbage")) == (None, None, "****")
    assert mask_email("zhang.san@example.com") == "z***@example.com"
    assert (mask_email("no-at-sign"), mask_email(None), mask_email("")) == ("***", None, "")
    assert (mask_name("张三丰"), mask_name("张"), mask_name(None)) == ("张**", "张*", None)


def test_pseudonyms_are_stable_per_key_and_kind_and_do_not_show_the_value():
    p, other = Pseudonymizer(b"key-one"), Pseudonymizer(b"key-two")
    alias = p("phone", "+8613800138000")
    assert alias == p("phone", "+8613800138000") and len(alias) == 20
    assert set(alias) <= set("0123456789abcdef") and "13800138000" not in alias
    assert alias != other("phone", "+8613800138000")
    assert alias != p("member_id", "+8613800138000")
    assert p("phone", "+8613800138000", length=32).startswith(alias)


@pytest.mark.parametrize("notation", NOTATIONS + ["86 13800138000", "0086-13800138000"])
def test_redaction_finds_a_mobile_number_in_free_text_in_every_notation(notation):
    text = f"customer said: call me on {notation}, thanks"
    redacted = redact_digits(text)
    assert "[redacted]" in redacted
    digits = "".join(ch for ch in redacted if ch.isdigit())
    assert "8000" not in digits and "0013" not in digits
    assert redacted.startswith("customer said: call me on ") and redacted.endswith(", thanks")


def test_redaction_leaves_order_numbers_amounts_and_dates_alone():
    text = "order T-20261120-000123 paid 268.00 on 2026-11-20 at SH-001, ticket 123456789012"
    assert redact_digits(text) == text


def test_a_number_of_a_mobile_type_is_always_a_valid_one():
    # normalize_phone asks a number's type only (issue 14): that a mobile type implies validity rests on every
    # region's metadata having the calling code the region is listed under (a phonenumbers upgrade must keep it).
    import phonenumbers
    from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, REGION_CODE_FOR_NON_GEO_ENTITY

    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            assert region == region.upper()
            if region != REGION_CODE_FOR_NON_GEO_ENTITY:
                assert phonenumbers.country_code_for_valid_region(region) == code, region
    for raw in ("+8613800138000", "+6581234567", "+85261234567", "+14155552671", "+447911123456"):
        number = phonenumbers.parse(raw)
        assert phonenumbers.number_type(number) in (phonenumbers.PhoneNumberType.MOBILE,
                                                    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
        assert phonenumbers.is_valid_number(number)
