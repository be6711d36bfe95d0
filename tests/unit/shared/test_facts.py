"""Customer facts read off channel events: exact money, calendar days in the store's timezone,
purchases, refunds and profile fields whose newest value wins."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from shared.contract.events import parse_event
from shared.contract.facts import (
    FieldValue,
    PurchaseFact,
    RefundFact,
    attribute_values,
    epoch_ms,
    from_minor,
    local_day,
    newest,
    purchase_fact,
    refund_fact,
    to_minor,
)
from shared.settings import Settings

SHANGHAI = ZoneInfo("Asia/Shanghai")


def ev(kind: str, time: str = "2026-03-01T23:30:00+08:00", source: str = "pos/SH-001", **data):
    return parse_event({"specversion": "1.0", "id": "e1", "source": source, "type": kind, "time": time,
                        "data": {"identity": {"phone": "13800138000"}, **data}})


@pytest.mark.parametrize(("amount", "minor"), [
    ("268.00", 26800), ("0.01", 1), ("0.10", 10), ("99999999.99", 9999999999), ("0", 0)])
def test_money_is_integer_fen_and_back(amount, minor):
    assert to_minor(Decimal(amount)) == minor
    assert from_minor(minor) == Decimal(amount) and str(from_minor(minor)) == str(Decimal(amount).quantize(
        Decimal("0.01")))


def test_sums_of_money_are_exact_where_binary_floats_are_not():
    assert sum([0.1] * 3) != 0.3
    assert str(from_minor(sum(to_minor(Decimal("0.10")) for _ in range(3)))) == "0.30"
    assert str(from_minor(-12345)) == "-123.45"


def test_epoch_ms_and_local_day_of_an_aware_moment():
    moment = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 March in Shanghai
    assert epoch_ms(moment) == 1_772_382_600_000
    assert local_day(moment, SHANGHAI) == date(2026, 3, 2)
    assert local_day(moment, ZoneInfo("Europe/London")) == date(2026, 3, 1)
    assert local_day(moment, ZoneInfo("America/Los_Angeles")) == date(2026, 3, 1)


def test_a_purchase_counts_on_the_calendar_day_of_its_store_across_midnight():
    settings = Settings(_env_file=None, timezone="Asia/Shanghai", store_timezones="LDN-01=Europe/London")
    late = ev("crm.purchase", time="2026-03-01T16:30:00+00:00", order_id="o-1", amount="268.00", store_id="SH-001",
              items=[{"sku": "SK-2", "category": "makeup"}, {"sku": "SK-1", "category": "skincare"},
                     {"sku": "SK-1", "category": None}])
    assert purchase_fact(late, "c_1", settings.store_zone) == PurchaseFact(
        "pos/SH-001", "e1", "c_1", "o-1", 26800, "SH-001", 1_772_382_600_000, "2026-03-02",
        ("makeup", "skincare"), ("SK-1", "SK-2"))
    london = ev("crm.purchase", time="2026-03-01T16:30:00+00:00", order_id="o-2", amount="1.50", store_id="LDN-01")
    assert purchase_fact(london, "c_1", settings.store_zone).day == "2026-03-01"
    just_before_midnight = ev("crm.purchase", time="2026-03-01T23:59:59.999+08:00", order_id="o-3", amount="1",
                              store_id=None)
    fact = purchase_fact(just_before_midnight, "c_1", settings.store_zone)
    assert (fact.day, fact.store_id, fact.amount_minor) == ("2026-03-01", None, 100)
    assert purchase_fact(ev("crm.page_view", url="u"), "c_1", settings.store_zone) is None


def test_a_store_timezone_that_does_not_exist_is_refused_at_start_up():
    with pytest.raises(ValidationError, match="unknown timezone for store LDN-01"):
        Settings(_env_file=None, store_timezones="SG-01=Asia/Singapore,LDN-01=Europe/Londn")
    with pytest.raises(ValidationError, match="STORE=Area/City"):
        Settings(_env_file=None, store_timezones="SG-01")
    spaced = Settings(_env_file=None, store_timezones=" SG-01 = Asia/Singapore , ")
    assert spaced.store_zone("SG-01") == ZoneInfo("Asia/Singapore")


def test_a_refund_is_the_refunded_part_of_its_order():
    refund = ev("crm.refund", order_id="o-1", amount="100.25")
    assert refund_fact(refund, "c_1") == RefundFact("pos/SH-001", "e1", "c_1", "o-1", 10025, epoch_ms(refund.time))
    assert refund_fact(ev("crm.purchase", order_id="o", amount="1"), "c_1") is None


def test_profile_consent_and_follow_events_set_fields_with_their_source():
    ms = epoch_ms(datetime(2026, 3, 1, 15, 30, tzinfo=UTC))
    profile = ev("crm.profile", name="李伟", birthday="1990-05-01", city="上海", email=None,
                 attributes={"skin": "dry", "vip": True})
    assert attribute_values(profile) == [
        FieldValue("name", "李伟", ms, "pos/SH-001", "e1"), FieldValue("city", "上海", ms, "pos/SH-001", "e1"),
        FieldValue("birthday", "1990-05-01", ms, "pos/SH-001", "e1"),
        FieldValue("attributes.skin", "dry", ms, "pos/SH-001", "e1"),
        FieldValue("attributes.vip", True, ms, "pos/SH-001", "e1")]
    assert attribute_values(ev("crm.consent", purpose="sms", granted=False)) == [
        FieldValue("consent.sms", False, ms, "pos/SH-001", "e1")]
    assert attribute_values(ev("crm.unfollow", source="wechat/oa")) == [
        FieldValue("wechat_following", False, ms, "wechat/oa", "e1")]
    assert attribute_values(ev("crm.follow", source="wechat/oa"))[0].value is True
    assert attribute_values(ev("crm.purchase", order_id="o", amount="1")) == []


def test_a_consumer_gets_only_the_fields_it_keeps_in_the_order_the_event_sets_them():
    ms = epoch_ms(datetime(2026, 3, 1, 15, 30, tzinfo=UTC))
    profile = ev("crm.profile", name="李伟", gender="M", birthday="1990-05-01", city="上海",
                 attributes={"skin": "dry"})
    campaigns = {"gender", "birthday", "city", "wechat_following"}.__contains__
    assert attribute_values(profile, kept=campaigns) == [
        FieldValue("gender", "M", ms, "pos/SH-001", "e1"), FieldValue("city", "上海", ms, "pos/SH-001", "e1"),
        FieldValue("birthday", "1990-05-01", ms, "pos/SH-001", "e1")]
    assert attribute_values(ev("crm.consent", purpose="sms", granted=True), kept=campaigns) == []
    assert attribute_values(ev("crm.follow", source="wechat/oa"), kept=campaigns) == [
        FieldValue("wechat_following", True, ms, "wechat/oa", "e1")]


def test_the_newest_value_wins_per_field_whatever_the_order_with_ties_broken_by_source_then_id():
    values = [
        FieldValue("city", "Shanghai", 100, "pos/SH-001", "e1"),
        FieldValue("city", "Beijing", 300, "pos/SH-001", "e2"),
        FieldValue("city", "Suzhou", 300, "web/shop", "e0"),
        FieldValue("name", "Li", 50, "wechat/oa", "e9"),
        FieldValue("name", "Li Wei", 50, "wechat/oa", "e10"),  # "e9" sorts after "e10": the text order decides
    ]
    for order in itertools.permutations(values):
        assert newest(list(order)) == {"city": values[2], "name": values[3]}
    assert newest([]) == {}
