"""``covers`` on ``crm.purchase`` (issue 15): a whole number from 1, optional. A bad one is refused where events
enter (422 naming the field) and dead-lettered by a consumer with the same reason; a good one is handed on,
resolved, to alerts (whose sheet counts it: test_attendance.py)."""

from __future__ import annotations

import json

import pytest

from services.identity import messages as identity_messages
from shared.contract import topics
from shared.contract.messages import read
from shared.streaming.batch import Incoming
from tests.integration.identity.test_ingest_bad_input import Api
from tests.unit.identity.support import purchase


def bought(covers) -> dict:
    event = purchase("c1", {"member_id": "M-1"}, "480.00", store_id="BJ-01")
    if covers is not ...:
        event["data"]["covers"] = covers
    return event


@pytest.mark.parametrize("covers", [0, -2, 4.5, "4", True, 10_001, [4]])
def test_a_bad_covers_is_a_422_naming_the_field_and_a_dead_letter(tmp_path, covers):
    api = Api(tmp_path)
    r = api.post(json.dumps(bought(covers)))
    assert r.status_code == 422, r.text
    (result,) = r.json()["results"]
    assert result["code"] == "invalid_event"
    assert [x for x in result["reasons"] if x.startswith("data.covers")], result["reasons"]
    assert api.sent == []
    raw = json.dumps(bought(covers)).encode()
    outcome = identity_messages.consume([Incoming(raw, "crm.channel.pos", 0, 7, [])], deps=api.service.deps)
    assert (outcome.processed, outcome.dead_lettered, dict(outcome.counts)) == (0, 1, {"dead_letter:invalid_event": 1})


@pytest.mark.parametrize("covers", [1, 64, 10_000, None, ...])
def test_a_good_covers_or_none_is_accepted_and_handed_on_resolved(tmp_path, covers):
    api = Api(tmp_path)
    assert api.post(json.dumps(bought(covers))).status_code == 202
    outcome = api.consume()
    assert outcome.processed == 1
    resolved = [m for m in outcome.outbox if m.topic == topics.CUSTOMER_EVENTS]
    assert len(resolved) == 1
    event = read(resolved[0].value).event  # as alerts reads it
    assert event.data.covers == (None if covers is ... else covers)
