"""Messages between services: encode and decode round-trip, unknown kinds are ignored, garbage is poison."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from shared.contract.events import InvalidEvent
from shared.contract.messages import (
    KINDS,
    AlertChanged,
    AuditRecorded,
    CampaignBonusGranted,
    CampaignTouched,
    CustomerErased,
    CustomerEventResolved,
    CustomerMerged,
    CustomerOwnerChanged,
    ErasureConfirmed,
    PointsExpired,
    PointsExpiryAnnounced,
    Read,
    StoreSaleRecorded,
    TierChanged,
    ViewPartUpdated,
    decode,
    encode,
    next_part_version,
    part_version,
)

AT = datetime(2026, 6, 1, 8, 0, 0, 123456, tzinfo=UTC)

EXAMPLES = [
    CustomerEventResolved(customer_id="c_1", record_id="c_2", event={"id": "e1", "data": {"amount": "1.00"}},
                          resolved_at=AT),
    CustomerMerged(kind="customer.merged", merge_id="m1", survivor_id="c_1", merged_id="c_2", records=["c_2", "c_3"],
                   at=AT),
    CustomerMerged(kind="customer.unmerged", merge_id="m1", survivor_id="c_1", merged_id="c_2", records=["c_2"],
                   at=AT),
    ViewPartUpdated(customer_id="c_1", part="loyalty", value={"points_balance": 10, "tier": "B"},
                    version="2026-06-01T08:00:00Z-000001"),
    PointsExpiryAnnounced(announcement_id="a1", customer_id="c_1", points=120, expires_at=AT, balance=500, at=AT),
    PointsExpired(entry_id="x1", customer_id="c_1", points=120, at=AT),
    TierChanged(change_id="t1", customer_id="c_1", previous="C", tier="B", direction="upgrade", reason="spend",
                benefits={"gift": "80"}, at=AT),
    CampaignBonusGranted(grant_id="g1", campaign_id="k1", customer_id="c_1", multiplier=Decimal("1.5"),
                         starts_at=AT, ends_at=AT, at=AT),
    CampaignTouched(touch_id="u1", campaign_id="k1", customer_id="c_1", channel="sms", offer={"code": "X"}, at=AT),
    AlertChanged(alert_id="al1", customer_id="c_1", type="churn_red", severity="red", status="open",
                 store_id="SH-001", at=AT),
    AuditRecorded(audit_id="au_1", at="2026-06-01T08:00:00.123456Z", service="loyalty", actor="ops-1",
                  role="operator", scope="store=SH-001", action="loyalty.adjustment", customer_id="c_1",
                  target="adj_1", reason="goodwill"),
    CustomerOwnerChanged(customer_id="c_1", store_id="SH-001", at=AT),
    CustomerErased(erasure_id="er_1", customer_id="c_1", records=["c_1", "c_2"], at=AT),
    ErasureConfirmed(erasure_id="er_1", service="loyalty", at=AT),
    # issue 15: a non-member's sale, for store totals only
    StoreSaleRecorded(event={"id": "e2", "data": {"identity": {}, "amount": "1.00"}}, resolved_at=AT),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.kind)
def test_every_message_decodes_to_an_equal_model_from_bytes_or_text(message):
    raw = encode(message)
    assert isinstance(raw, bytes) and json.loads(raw)["kind"] == message.kind
    assert decode(raw) == message
    assert decode(raw.decode()) == message


def test_every_kind_has_an_example_here():
    assert {m.kind for m in EXAMPLES} == KINDS


def test_money_and_time_survive_the_round_trip_exactly():
    bonus = decode(encode(EXAMPLES[7]))
    assert bonus.multiplier == Decimal("1.5") and bonus.at == AT and bonus.at.microsecond == 123456


def test_messages_are_frozen():
    with pytest.raises(ValidationError):
        EXAMPLES[0].customer_id = "c_other"


@pytest.mark.parametrize("raw", [b'{"kind": "loyalty.something_new", "x": 1}', b'{"no_kind": true}',
                                 b'{"kind": 7}'])
def test_a_kind_this_version_does_not_know_is_ignored(raw):
    assert decode(raw) is None


def test_fields_a_consumer_does_not_know_are_ignored():
    raw = json.loads(encode(EXAMPLES[5]))
    assert decode(json.dumps({**raw, "added_in_a_later_version": [1, 2]})) == EXAMPLES[5]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_garbage_is_an_invalid_message(raw):
    with pytest.raises(InvalidEvent) as bad:
        decode(raw)
    assert (bad.value.code, bad.value.reasons) == ("invalid_json", ["value is not valid JSON"])


def test_a_known_kind_with_bad_fields_is_invalid_and_the_reasons_do_not_echo_values():
    raw = json.dumps({"kind": "customer.merged", "merge_id": "m1", "survivor_id": "+8613800138000",
                      "records": "13800138000", "at": "13800138000-not-a-time"})
    with pytest.raises(InvalidEvent) as bad:
        decode(raw)
    assert bad.value.code == "invalid_message"
    assert bad.value.reasons == ["merged_id: Field required", "records: Input should be a valid list",
                                 "at: Input should be a valid datetime or date, invalid date separator, expected `-`"]
    assert "13800138000" not in str(bad.value)


def test_a_resolved_event_built_from_its_json_decodes_to_the_same_message_as_the_model():
    from datetime import UTC, datetime

    from shared.contract.events import parse_event
    from shared.contract.messages import CustomerEventResolved, decode, encode, resolved_event_json

    event = parse_event({"specversion": "1.0", "id": "e-1", "source": "wechat/mini", "type": "crm.profile",
                         "time": "2026-11-20T10:15:00+08:00",
                         "data": {"identity": {"wechat_openid": "o-1"}, "name": "王小明", "city": "上海",
                                  "attributes": {"quote": "say \"hi\"\\n", "n": 1.5}}})
    at = datetime(2026, 11, 25, 8, 0, 0, 123456, tzinfo=UTC)
    built = resolved_event_json(customer_id="c_1", record_id="c_2", event_json=event.model_dump_json(), resolved_at=at)
    model = CustomerEventResolved(customer_id="c_1", record_id="c_2", event=event.model_dump(mode="json"),
                                  resolved_at=at)
    assert decode(built) == decode(encode(model)) == model


def test_view_part_versions_grow_per_customer_and_a_rebuilt_store_starts_above_what_was_published():
    before = time.time_ns() // 1000
    first = next_part_version(0)
    assert before <= first <= time.time_ns() // 1000  # the real clock in microseconds
    # A last version ahead of the clock: one more than the last.
    ahead = first + 10**9
    assert next_part_version(ahead) == ahead + 1
    # A store that published a thousand updates a second ago, then was rebuilt and counts from 1 again:
    # its next version still sorts above the old one as the text identity compares.
    old = part_version(before - 1_000_000 + 1_000)
    rebuilt = part_version(next_part_version(0))
    assert rebuilt > old and len(rebuilt) == len(old) == 20


def test_read_parses_the_channel_event_a_resolved_event_carries_and_refuses_one_it_cannot_parse():
    from shared.contract.messages import read

    event = {"specversion": "1.0", "id": "e-1", "source": "pos/SH-001", "type": "crm.purchase",
             "time": "2026-11-20T10:15:00+08:00",
             "data": {"identity": {"member_id": "M1"}, "order_id": "o-1", "amount": "12.50", "currency": "CNY",
                      "store_id": "SH-001"}}
    got = read(encode(CustomerEventResolved(customer_id="c_1", record_id="c_2", event=event, resolved_at=AT)))
    assert (got.event.id, str(got.event.data.amount), got.message.customer_id) == ("e-1", "12.50", "c_1")
    merged = EXAMPLES[1]
    assert read(encode(merged)) == Read(merged)  # other kinds carry no channel event
    broken = {**event, "data": {**event["data"], "amount": "-1"}}
    with pytest.raises(InvalidEvent):
        read(encode(CustomerEventResolved(customer_id="c_1", record_id="c_2", event=broken, resolved_at=AT)))


def test_read_walks_a_resolved_events_depth_only_when_its_brackets_allow_a_deep_one(monkeypatch):
    # Issue 13: every consumer read each resolved event's dict again for its depth, a visible cost per event.
    from shared.contract import events as events_module
    from shared.contract.messages import read

    walked = []
    real = events_module.json_depth
    monkeypatch.setattr(events_module, "json_depth", lambda value: walked.append(1) or real(value))
    event = {"specversion": "1.0", "id": "p-1", "source": "web/shop", "type": "crm.profile",
             "time": "2026-11-20T10:15:00+08:00", "data": {"identity": {"member_id": "M1"}, "attributes": {}}}
    got = read(encode(CustomerEventResolved(customer_id="c_1", record_id="c_2", event=event, resolved_at=AT)))
    assert got.event.id == "p-1" and walked == []
    deep: dict = {}
    for _ in range(40):
        deep = {"x": deep}
    too_deep = {**event, "data": {**event["data"], "attributes": deep}}
    with pytest.raises(InvalidEvent) as caught:
        read(encode(CustomerEventResolved(customer_id="c_1", record_id="c_2", event=too_deep, resolved_at=AT)))
    assert caught.value.code == "too_deep" and walked == [1]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.kind)
def test_a_valid_message_is_validated_from_its_json_in_one_pass(message, monkeypatch):
    # Issue 13: each message was parsed to a dict and that dict validated, about twice the time of one pass.
    from shared.contract import messages as messages_module

    class Counting:
        calls = 0

        def validate_json(self, raw):
            Counting.calls += 1
            return real.validate_json(raw)

    real = messages_module._HEAD
    monkeypatch.setattr(messages_module, "_HEAD", Counting())
    assert decode(encode(message)) == message and Counting.calls == 0
    assert decode(b'{"kind": "no.such.kind"}') is None and Counting.calls == 1


# -- issue 13: what a consumer reads of the kinds it takes and does not take ------------------------------


def _resolved_purchase(**data) -> bytes:
    event = {"specversion": "1.0", "id": "p1", "source": "pos/SH-001", "type": "crm.purchase",
             "time": "2026-06-01T10:00:00+08:00",
             "data": {"identity": {"member_id": "M1"}, "order_id": "o1", "amount": "12.30", "store_id": "SH-001",
                      **data}}
    return encode(CustomerEventResolved(customer_id="c_1", record_id="c_2", event=event, resolved_at=AT))


def test_a_taken_kind_read_with_its_headers_is_the_event_read_whole():
    from shared.contract.messages import Takes, kind_headers, read

    takes = Takes(frozenset({"crm.purchase"}))
    raw = _resolved_purchase(items=[{"sku": "A", "quantity": 2, "unit_price": 6.15}])
    got, whole = read(raw, kind_headers("customer.event", "crm.purchase"), takes=takes), read(raw)
    assert got.event == whole.event and got.event.data.amount == Decimal("12.30")
    assert (got.message.customer_id, got.message.record_id, got.message.resolved_at) == ("c_1", "c_2", AT)


def test_a_taken_kind_that_is_not_valid_is_refused_with_the_same_reasons():
    from shared.contract.messages import Takes, kind_headers, read

    takes = Takes(frozenset({"crm.purchase"}))
    raw = _resolved_purchase(amount="-1")
    with pytest.raises(InvalidEvent) as whole:
        read(raw)
    with pytest.raises(InvalidEvent) as named:
        read(raw, kind_headers("customer.event", "crm.purchase"), takes=takes)
    assert (named.value.code, str(named.value)) == (whole.value.code, str(whole.value))
    assert "amount" in str(named.value)


def test_an_event_naming_its_type_twice_is_read_by_the_same_type_on_every_path():
    # JSON with a repeated key: the head and the whole read take the same (the last) value, so a page view's
    # header cannot hide the purchase the whole read would see.
    from shared.contract.messages import Takes, kind_headers, read

    raw = _resolved_purchase().replace(b'"type":"crm.purchase"', b'"type":"crm.page_view","type":"crm.purchase"')
    assert raw.count(b'"type":') == 2
    got = read(raw, kind_headers("customer.event", "crm.page_view"), takes=Takes(frozenset({"crm.purchase"})))
    assert got.event == read(raw).event and got.event.type == "crm.purchase"


def test_a_non_members_sale_without_its_resolution_time_is_refused_alike_by_a_consumer_that_skips_sales():
    # A header naming a skipped kind must not turn a message that is not valid into one counted as ignored:
    # loyalty and campaigns dead-letter it as they did before they skipped sales.
    from shared.contract.messages import StoreSaleRecorded, Takes, kind_headers, read

    event = json.loads(_resolved_purchase())["event"] | {"data": {"identity": {}, "order_id": "o1", "amount": "1.00"}}
    valid = json.loads(encode(StoreSaleRecorded(event=event, resolved_at=AT)))
    raw = json.dumps({k: v for k, v in valid.items() if k != "resolved_at"}).encode()
    takes = Takes(frozenset({"crm.purchase"}))
    with pytest.raises(InvalidEvent) as whole:
        read(raw, takes=takes)
    with pytest.raises(InvalidEvent) as named:
        read(raw, kind_headers("store.sale", "crm.purchase"), takes=takes)
    assert (named.value.code, str(named.value)) == (whole.value.code, str(whole.value))
    assert "resolved_at" in str(named.value)


@pytest.mark.parametrize("type_", ["x" * 129, "crm page view", "9crm.page_view", ""])
def test_an_event_type_no_channel_event_may_have_is_refused_alike_when_its_headers_name_it(type_):
    # The head is validated as the whole event is: a type the contract refuses (OtherEvent's pattern and
    # length) is a dead letter whatever the headers claim.
    from shared.contract.messages import Takes, kind_headers, read

    raw = _resolved_purchase().replace(b'"type":"crm.purchase"', json.dumps({"type": type_})[1:-1].encode())
    takes = Takes(frozenset({"crm.purchase"}))
    with pytest.raises(InvalidEvent) as whole:
        read(raw, takes=takes)
    with pytest.raises(InvalidEvent) as named:
        read(raw, kind_headers("customer.event", type_), takes=takes)
    assert (named.value.code, str(named.value)) == (whole.value.code, str(whole.value))
