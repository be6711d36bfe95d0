"""Each channel event is parsed and validated once on its way through identity, and identity's table
takes every kind of message it consumes."""

from __future__ import annotations

import json
import typing
from collections import Counter

import pytest

from services.identity import messages
from services.identity.handlers import commands, consume
from shared.contract import events
from shared.contract.messages import ViewPartUpdated
from tests.unit.identity.support import event, incoming, make_deps, purchase

LI = "+8613800138000"


@pytest.fixture
def deps(tmp_path):
    return make_deps(tmp_path / "identity.db")


@pytest.fixture
def validations(monkeypatch) -> Counter:
    """How often channel events are validated, from JSON text and from parsed values."""
    calls: Counter = Counter()
    for name in ("validate_json", "validate_python"):
        real = getattr(events._ADAPTER, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(events._ADAPTER, name, spy)
    return calls


def test_http_ingestion_validates_each_event_once_and_publishes_what_it_validated(deps, validations):
    items = [purchase("e1", {"phone": "138 0013 8000"}, "5.5"), event("e2", {"wechat_openid": "oX-1"})]
    sent: list = []
    results = commands.ingest(items, deps=deps, publish=sent.extend)
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    # Validated from the values the body held: never dumped to JSON and parsed again.
    assert validations == Counter({"validate_python": 2})
    published = [json.loads(o.value) for o in sent]
    assert published[0]["data"]["amount"] == "5.50" and published[0]["datacontenttype"] == "application/json"
    assert [p["id"] for p in published] == ["e1", "e2"]


def test_a_consumed_channel_event_is_parsed_once_and_the_handler_gets_it_typed(deps, validations):
    outcome = messages.consume(incoming([purchase("e1", {"phone": LI}, "5.00"), event("e2", {"phone": LI})]),
                               deps=deps)
    assert (outcome.processed, outcome.dead_lettered) == (2, 0)
    assert validations == Counter({"validate_json": 2})


def test_the_table_takes_every_channel_event_type_and_view_parts():
    channel_types = {typing.get_args(member)[0] for member in typing.get_args(typing.get_args(events.ChannelEvent)[0])}
    assert len(channel_types) == 12  # issue 14 added crm.delivery, crm.points_opening and crm.tier_import
    assert {t: messages.HANDLERS.get(t) for t in channel_types} == {t: consume.resolve for t in channel_types}
    assert messages.HANDLERS[ViewPartUpdated] is consume.hold_parts
