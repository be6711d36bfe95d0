"""The view parts as a contract: each part built as its publisher builds it, through identity's view.

A field renamed on one side only (a publisher, the shared model, or identity's assembly) fails here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from services.alerts.domain.workflow import Alert
from services.alerts.handlers.evaluation import open_items
from services.campaigns.domain.attribution import Enrolment, Outcome, view_items
from services.identity import messages as identity_messages
from services.identity.handlers.queries import customer_view
from services.loyalty.handlers.accounts import view_of
from shared.contract.events import InvalidEvent
from shared.contract.messages import ViewPartUpdated, decode, encode, part_version
from shared.contract.view_parts import AlertsPart, CampaignsPart, LoyaltyPart
from tests.unit.identity.support import customer_of_phone, incoming, make_deps, purchase

ZONE = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
PHONE = "+8613800138000"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def published(customer: str) -> tuple[dict, list[ViewPartUpdated]]:
    """Each part as its service computes it (the raw JSON) and the messages it publishes."""
    settled = SimpleNamespace(balance=150, tier="B", debt=20, expiring=[(AT + timedelta(days=30), 100)])
    loyalty = view_of(settled, ZONE)
    alerts = open_items([Alert(alert_id="al_1", customer_id=customer, type="complaint", severity="red",
                               status="open", store_id="SH-001", manager=None, action="call the customer",
                               opened_at=AT, updated_at=AT, last_trigger_at=AT, origin_id=customer, repeats=2)])
    enrolment = Enrolment(campaign_id="k1", member_id=customer, customer_id=customer, group="treatment",
                          at_ms=_ms(AT), window_ms=_ms(AT + timedelta(days=30)))
    campaigns = view_items([enrolment], {("k1", customer): Outcome(converted=True)}, {"k1": "Winback"})[customer]
    messages = [
        ViewPartUpdated(customer_id=customer, part="loyalty", value=LoyaltyPart.model_validate(loyalty),
                        version=part_version(1)),
        ViewPartUpdated(customer_id=customer, part="alerts", value=AlertsPart(open=alerts), version=part_version(1)),
        ViewPartUpdated(customer_id=customer, part="campaigns", value=CampaignsPart(items=campaigns),
                        version=part_version(1)),
    ]
    return {"loyalty": loyalty, "alerts": {"open": alerts}, "campaigns": {"items": campaigns}}, messages


@pytest.fixture
def identity(tmp_path):
    deps = make_deps(tmp_path / "identity.db")
    identity_messages.consume(incoming([purchase("e1", {"phone": PHONE}, "10.00")]), deps=deps)
    return deps, customer_of_phone(PHONE)


def test_each_part_as_published_is_shown_in_the_customer_view_exactly(identity):
    deps, customer = identity
    raw, messages = published(customer)
    assert raw["loyalty"]["points_balance"] == 150 and raw["alerts"]["open"] and raw["campaigns"]
    outcome = identity_messages.consume(incoming([encode(m) for m in messages], topic="crm.loyalty.events"), deps=deps)
    assert (outcome.processed, outcome.dead_lettered) == (3, 0)
    view = customer_view(deps.store, customer, reveal=False, zone=ZONE).model_dump(mode="json")
    # The same keys in the same order with the same values: the view's JSON is the publishers' JSON.
    assert json.dumps(view["loyalty"]) == json.dumps(raw["loyalty"])
    assert json.dumps(view["alerts"]) == json.dumps(raw["alerts"])
    assert json.dumps(view["campaigns"]) == json.dumps(raw["campaigns"]["items"])


def test_a_part_that_is_not_its_model_is_dead_lettered_with_a_reason_and_the_held_part_kept(identity):
    deps, customer = identity
    raw, messages = published(customer)
    identity_messages.consume(incoming([encode(messages[0])], topic="crm.loyalty.events"), deps=deps)
    renamed = {k if k != "debt" else "owed": v for k, v in raw["loyalty"].items()}
    bad = [{"kind": "view.part", "customer_id": customer, "part": "loyalty", "value": renamed,
            "version": part_version(2)},
           {"kind": "view.part", "customer_id": customer, "part": "loyalty", "value": raw["alerts"],
            "version": part_version(3)}]
    outcome = identity_messages.consume(incoming(bad, topic="crm.loyalty.events", first_offset=5), deps=deps)
    assert (outcome.processed, outcome.dead_lettered) == (0, 2)
    reasons = sorted(letter.reason for letter in deps.store.dead_letters())
    assert [letter.code for letter in deps.store.dead_letters()] == ["invalid_message", "invalid_message"]
    assert reasons == [
        "value: not a loyalty part (owed: Extra inputs are not permitted)",
        "value: not a loyalty part (points_balance: Field required; open: Extra inputs are not permitted)",
    ]
    view = customer_view(deps.store, customer, reveal=False, zone=ZONE).model_dump(mode="json")
    assert json.dumps(view["loyalty"]) == json.dumps(raw["loyalty"])


@pytest.mark.parametrize("part", ["loyalty", "alerts", "campaigns"])
def test_a_part_round_trips_through_its_json_schema_and_the_message(part):
    raw, messages = published("c_1")
    message = next(m for m in messages if m.part == part)
    model = type(message.value)
    schema = model.model_json_schema()
    jsonschema.validate(raw[part], schema)
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == list(raw[part])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**raw[part], "renamed": 1}, schema)
    assert model.model_validate_json(json.dumps(raw[part])).model_dump(mode="json") == raw[part]
    again = decode(encode(message))
    assert again == message and type(again.value) is model
    assert json.loads(encode(message))["value"] == raw[part]


def test_a_part_model_given_for_another_part_is_refused():
    with pytest.raises(ValueError, match="a AlertsPart is not the loyalty part"):
        ViewPartUpdated(customer_id="c_1", part="loyalty", value=AlertsPart(open=[]), version=part_version(1))
    with pytest.raises(InvalidEvent):
        decode(json.dumps({"kind": "view.part", "customer_id": "c_1", "part": "campaigns",
                           "value": {"items": [{"campaign_id": "k1"}]}, "version": part_version(1)}))
