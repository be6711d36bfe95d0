"""Identity's rules: cleaning identifiers, resolving an event to a customer, the home store."""

from __future__ import annotations

import pytest

from services.identity.domain.cleaning import Cleaning, clean_identity
from services.identity.domain.resolution import Conflict, Found, Resolution, home_store, record_id_for, resolve
from shared.contract.events import Identity, InvalidEvent
from shared.privacy import Pseudonymizer

PSEUDO = Pseudonymizer(b"unit-test-key")
RULES = Cleaning()
E164 = "+8613800138000"


@pytest.mark.parametrize("notation", [
    "13800138000", "138-0013-8000", "+86 138 0013 8000", "008613800138000",  # CONTRACT.md's four
    "138 0013 8000", "+8613800138000", "8613800138000", "+86 (138) 0013-8000", " 13800138000 ",
])
def test_every_phone_notation_cleans_to_one_e164_number(notation):
    assert clean_identity(Identity(phone=notation), RULES) == [("phone", E164)]


def test_the_default_region_comes_from_the_rules():
    assert clean_identity(Identity(phone="8123 4567"), Cleaning(region="SG")) == [("phone", "+6581234567")]
    assert clean_identity(Identity(phone="+65 8123 4567"), RULES) == [("phone", "+6581234567")]


def test_identifiers_come_back_cleaned_in_priority_order():
    identity = Identity(anonymous_id=" anon-1 ", email=" Li.Wei@Example.COM ", member_id="M-9", phone="13800138000",
                        wechat_openid="oX-1", wechat_unionid="uX-1", web_user_id="u-7")
    assert clean_identity(identity, RULES) == [
        ("phone", E164), ("wechat_unionid", "uX-1"), ("wechat_openid", "oX-1"), ("member_id", "M-9"),
        ("web_user_id", "u-7"), ("email", "li.wei@example.com"), ("anonymous_id", "anon-1"),
    ]


@pytest.mark.parametrize("placeholder", [
    "13800000000",  # a run of one digit
    "13812345678", "13898765432", "13801234567",  # counting sequences
    "139 1234 5670",  # configured as blocked, written another way
])
def test_placeholder_and_blocked_phones_link_nothing_and_the_other_identifiers_still_count(placeholder):
    rules = Cleaning(blocked_phones=frozenset({"13912345670"}))
    assert clean_identity(Identity(phone=placeholder, wechat_openid="oX-1"), rules) == [("wechat_openid", "oX-1")]


@pytest.mark.parametrize("placeholder", ["0", "null", "NULL", "test", "  ", "00000000000", "000-0000-0000",
                                         "11111111111", "unknown"])
def test_placeholder_values_typed_into_the_phone_field_are_dropped_not_fatal(placeholder):
    assert clean_identity(Identity(phone=placeholder, member_id="M-1"), RULES) == [("member_id", "M-1")]


@pytest.mark.parametrize("placeholder", ["0", "null", "None", "undefined", "TEST", "unknown", " ", "000", "0-0",
                                         "--"])
def test_placeholder_values_of_other_identifiers_are_dropped(placeholder):
    identity = Identity(wechat_openid=placeholder, member_id=placeholder, email=placeholder, anonymous_id="a-1")
    assert clean_identity(identity, RULES) == [("anonymous_id", "a-1")]


def test_an_event_with_only_placeholders_has_no_usable_identifier():
    with pytest.raises(InvalidEvent) as bad:
        clean_identity(Identity(phone="13800000000", wechat_openid="null", email="0"), RULES)
    assert bad.value.code == "no_usable_identifier"


@pytest.mark.parametrize("phone", ["12345", "021 6888 8888", "+86 138 0013 800", "phone-please"])
def test_a_malformed_phone_is_an_invalid_event_whose_reason_never_echoes_it(phone):
    with pytest.raises(InvalidEvent) as bad:
        clean_identity(Identity(phone=phone, wechat_openid="oX-1"), RULES)
    assert bad.value.code == "invalid_phone"
    assert bad.value.reasons and all(phone not in r and phone.replace(" ", "") not in r for r in bad.value.reasons)
    assert bad.value.reasons[0].startswith("data.identity.phone: ")


# -- resolve ----------------------------------------------------------------------------------------
PHONE = ("phone", E164)
OPENID = ("wechat_openid", "oX-1")
MEMBER = ("member_id", "M-1")
WEB = ("web_user_id", "u-1")


def test_a_new_phone_creates_its_customer_named_by_the_phone_pseudonym():
    rid = "c_" + PSEUDO("phone", E164)
    assert record_id_for(PHONE, PSEUDO) == rid
    assert resolve([PHONE, MEMBER], {}, set(), PSEUDO) == Resolution(
        record_id=rid, root_id=rid, create=(rid, E164), links=[PHONE, MEMBER])


def test_a_known_phone_resolves_to_its_record_and_links_new_identifiers():
    found = {PHONE: Found("c_p", "c_root", True), MEMBER: Found("c_p", "c_root", True)}
    assert resolve([PHONE, OPENID, MEMBER], found, set(), PSEUDO) == Resolution(
        record_id="c_p", root_id="c_root", links=[OPENID])


def test_a_provisional_customer_is_merged_into_the_phone_customer_that_claims_its_identifier():
    found = {PHONE: Found("c_p", "c_p", True), OPENID: Found("c_w", "c_w", False)}
    assert resolve([PHONE, OPENID], found, set(), PSEUDO) == Resolution(
        record_id="c_p", root_id="c_p", merges=[("c_p", "c_w", OPENID)])


def test_a_new_phone_binding_a_provisional_customer_creates_the_phone_customer_and_merges_into_it():
    rid = "c_" + PSEUDO("phone", E164)
    found = {OPENID: Found("c_w", "c_w", False)}
    assert resolve([PHONE, OPENID], found, set(), PSEUDO) == Resolution(
        record_id=rid, root_id=rid, create=(rid, E164), links=[PHONE], merges=[(rid, "c_w", OPENID)])


def test_two_phone_customers_are_never_merged_the_event_records_a_conflict_and_links_nothing():
    found = {PHONE: Found("c_p", "c_p", True), MEMBER: Found("c_q", "c_q", True)}
    assert resolve([PHONE, OPENID, MEMBER], found, set(), PSEUDO) == Resolution(
        record_id="c_p", root_id="c_p",
        conflicts=[Conflict("would_merge_two_phone_customers", MEMBER, ("c_p", "c_q"))])


def test_identifiers_of_two_phone_customers_without_a_phone_are_a_conflict():
    found = {OPENID: Found("c_a1", "c_a", True), MEMBER: Found("c_b", "c_b", True)}
    assert resolve([OPENID, MEMBER, WEB], found, set(), PSEUDO) == Resolution(
        record_id="c_a1", root_id="c_a",
        conflicts=[Conflict("identifiers_of_two_phone_customers", OPENID, ("c_a", "c_b"))])


def test_a_pair_an_unmerge_separated_is_not_merged_again_automatically():
    found = {PHONE: Found("c_p", "c_p", True), OPENID: Found("c_w", "c_w", False)}
    assert resolve([PHONE, OPENID, WEB], found, {frozenset({"c_p", "c_w"})}, PSEUDO) == Resolution(
        record_id="c_p", root_id="c_p", conflicts=[Conflict("merge_was_undone", OPENID, ("c_p", "c_w"))])


def test_unknown_identifiers_without_a_phone_make_a_provisional_customer_named_by_the_most_durable():
    rid = "c_" + PSEUDO("wechat_openid", "oX-1")
    assert resolve([OPENID, WEB], {}, set(), PSEUDO) == Resolution(
        record_id=rid, root_id=rid, create=(rid, None), links=[OPENID, WEB])


def test_without_a_phone_two_provisional_customers_join_the_lower_id_and_the_event_stays_on_its_record():
    found = {OPENID: Found("c_w2", "c_w2", False), WEB: Found("c_w1", "c_w1", False)}
    assert resolve([OPENID, WEB, MEMBER], found, set(), PSEUDO) == Resolution(
        record_id="c_w2", root_id="c_w1", links=[MEMBER], merges=[("c_w1", "c_w2", OPENID)])


def test_without_a_phone_a_provisional_customer_joins_the_phone_customer_behind_another_identifier():
    found = {OPENID: Found("c_w", "c_w", False), WEB: Found("c_p", "c_p", True)}
    assert resolve([OPENID, WEB], found, set(), PSEUDO) == Resolution(
        record_id="c_w", root_id="c_p", merges=[("c_p", "c_w", OPENID)])


# -- home store --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("store_days", "home"), [
    ([], None),
    ([("SH-002", 1, "2026-01-05")], "SH-002"),
    ([("SH-002", 2, "2026-01-05"), ("SH-001", 3, "2026-01-01")], "SH-001"),  # most purchase days
    ([("SH-002", 3, "2026-01-05"), ("SH-001", 3, "2026-01-09"), ("BJ-001", 2, "2026-02-01")], "SH-001"),  # then recency
    ([("SH-002", 3, "2026-01-09"), ("BJ-001", 3, "2026-01-09"), ("SH-001", 3, "2026-01-09")], "BJ-001"),  # lowest id
])
def test_home_store_is_the_store_with_most_purchase_days_then_the_latest_day_then_the_lowest_id(store_days, home):
    assert home_store(store_days) == home
    assert home_store(list(reversed(store_days))) == home
