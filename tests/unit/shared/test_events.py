"""Channel events: one model per type, and reasons for a bad event that never echo its values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.contract.events import (
    ComplaintEvent,
    ConsentEvent,
    FollowEvent,
    InvalidEvent,
    OtherEvent,
    PageViewEvent,
    ProfileEvent,
    PurchaseEvent,
    RefundEvent,
    SurveyEvent,
    event_time,
    parse_event,
)

PHONE = "13800138000"


def ev(kind: str, *, identity: dict | None = None, **data) -> dict:
    return {"specversion": "1.0", "id": "T-1", "source": "pos/SH-001", "type": kind,
            "time": "2026-11-20T10:15:00+08:00", "datacontenttype": "application/json",
            "data": {"identity": identity or {"phone": PHONE}, **data}}


@pytest.mark.parametrize(("event", "model"), [
    (ev("crm.purchase", order_id="T-1", amount="268.00", currency="CNY", store_id="SH-001",
        items=[{"sku": "SK-01", "category": "skincare", "quantity": 1, "unit_price": "268.00"}]), PurchaseEvent),
    (ev("crm.refund", order_id="T-1", amount=100), RefundEvent),
    (ev("crm.profile", name="李伟", gender="m", birthday="1990-05-01", email="li@example.com", city="上海",
        attributes={"skin": "dry"}), ProfileEvent),
    (ev("crm.consent", purpose="sms", granted=False), ConsentEvent),
    (ev("crm.complaint", text="waited an hour", store_id="SH-001", severity="high"), ComplaintEvent),
    (ev("crm.survey", score=0, comment="bad"), SurveyEvent),
    (ev("crm.follow", identity={"wechat_openid": "oX"}), FollowEvent),
    (ev("crm.unfollow", identity={"wechat_openid": "oX"}), FollowEvent),
    (ev("crm.page_view", url="https://shop.example/p/1", product="SK-01"), PageViewEvent),
    (ev("crm.purchase.v2", identity={"member_id": "M-1"}, anything={"goes": 1}), OtherEvent),
])
def test_each_type_parses_to_its_model_from_a_dict_and_from_json(event, model):
    parsed = parse_event(event)
    assert type(parsed) is model
    assert type(parse_event(json.dumps(event).encode())) is model
    assert (parsed.channel, parsed.key) == ("pos", ("pos/SH-001", "T-1"))
    assert event_time(parsed) == datetime(2026, 11, 20, 2, 15, tzinfo=UTC)


@pytest.mark.parametrize(("amount", "exact"), [
    ("268.00", "268.00"), ("268", "268.00"), (268, "268.00"), (0.1, "0.10"), ("0.3", "0.30"), (" 12.5 ", "12.50"),
    ("100000000", "100000000.00"),
])
def test_money_is_an_exact_two_place_decimal(amount, exact):
    parsed = parse_event(ev("crm.purchase", order_id="o", amount=amount))
    assert parsed.data.amount == Decimal(exact) and str(parsed.data.amount) == exact


def test_fields_a_consumer_does_not_know_are_kept_not_refused():
    parsed = parse_event({**ev("crm.purchase", order_id="o", amount="1.00", coupon="X1"), "traceid": "t"})
    assert parsed.data.model_extra == {"coupon": "X1"} and parsed.model_extra == {"traceid": "t"}


def _reasons(event) -> list[str]:
    with pytest.raises(InvalidEvent) as bad:
        parse_event(event)
    assert bad.value.code == "invalid_event"
    assert str(bad.value) == "; ".join(bad.value.reasons)
    return bad.value.reasons


@pytest.mark.parametrize(("event", "reasons"), [
    (ev("crm.purchase", order_id="o", amount="12.345"),
     ["data.amount: Value error, must have at most 2 decimal places"]),
    (ev("crm.purchase", order_id="o", amount="-0.01"),
     ["data.amount: Value error, must be a non-negative decimal amount"]),
    (ev("crm.purchase", order_id="o", amount="100000000.01"),
     ["data.amount: Value error, must be a non-negative decimal amount"]),
    (ev("crm.purchase", amount="1.00"), ["data.order_id: Field required"]),
    (ev("crm.purchase", order_id="o", amount="1.00", items=[{"sku": "a", "unit_price": "1.001"}]),
     ["data.items.0.unit_price: Value error, must have at most 2 decimal places"]),
    (ev("crm.refund", order_id="o"), ["data.amount: Field required"]),
    (ev("crm.profile", birthday="1990-13-01"),
     ["data.birthday: Input should be a valid date or datetime, month value is outside expected range of 1-12"]),
    (ev("crm.consent", purpose="fax", granted=True),
     ["data.purpose: Input should be 'sms', 'wechat', 'email', 'mail' or 'call'"]),
    (ev("crm.consent", purpose="sms"), ["data.granted: Field required"]),
    (ev("crm.survey", score=11), ["data.score: Input should be less than or equal to 10"]),
    (ev("crm.page_view"), ["data.url: Field required"]),
    (ev("crm.follow", identity={"phone": ""}),
     ["data.identity: Value error, identity needs at least one of phone, wechat_unionid, wechat_openid, member_id, "
      "web_user_id, email, anonymous_id"]),
    ({**ev("crm.follow"), "time": "2026-11-20T10:15:00"}, ["time: Input should have timezone info"]),
    ({**ev("crm.follow"), "source": "fax/machine"},
     ["source: String should match pattern '^(pos|wechat|web)/[^\\s]+$'"]),
    ({**ev("crm.follow"), "specversion": "0.3"}, ["specversion: Input should be '1.0'"]),
    ({**ev("crm.follow"), "type": "crm purchase!"},
     ["type: String should match pattern '^[A-Za-z][A-Za-z0-9_.\\-]*$'"]),
])
def test_a_bad_event_of_each_type_is_refused_with_its_reasons(event, reasons):
    assert _reasons(event) == reasons


@pytest.mark.parametrize("amount", ["abc", "1,000.00", "0x10", None, True, {}, [1]])
def test_an_amount_that_is_not_a_number_is_an_invalid_event_not_a_crash(amount):
    assert _reasons(ev("crm.purchase", order_id="o", amount=amount)) == [
        "data.amount: Value error, must be a decimal amount"]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00-05:00",
                                    "1899-12-31T23:59:59+00:00"])
def test_an_event_time_outside_any_till_clock_is_refused_not_left_to_fail_later(moment):
    assert _reasons({**ev("crm.follow"), "time": moment}) == [
        "time: Value error, must be between the years 1900 and 9998"]


def test_reasons_never_echo_the_values_they_refuse():
    secret = "13912345678-secret@example.com"
    event = {**ev("crm.profile", identity={"phone": PHONE, "email": secret * 20}, birthday=secret, name=secret * 9,
                  gender=secret), "time": secret, "source": secret}
    reasons = _reasons(event)
    assert len(reasons) >= 4
    assert not any(secret in r or PHONE in r or "13912345678" in r for r in reasons)


def test_a_value_that_is_not_json_is_refused_as_such():
    with pytest.raises(InvalidEvent) as bad:
        parse_event(b'{"specversion": "1.0", "id": "13800138000"')
    assert (bad.value.code, bad.value.reasons) == ("invalid_json", ["value is not valid JSON"])


def test_a_staff_source_is_refused_from_a_channel_and_read_on_a_resolved_event():
    staff = {**ev("crm.profile", birthday="1990-11-26"), "source": "staff/ops-1", "id": "pf_1"}
    with pytest.raises(InvalidEvent) as refused:
        parse_event(json.dumps(staff))
    assert refused.value.reasons == ["source: String should match pattern '^(pos|wechat|web)/[^\\s]+$'"]
    read = parse_event(staff, resolved=True)
    assert (type(read), read.source, read.channel) == (ProfileEvent, "staff/ops-1", "staff")
