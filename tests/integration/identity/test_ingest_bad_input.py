"""``POST /v1/events`` under hostile input: one bad event never costs the batch, the HTTP side refuses
exactly what a consumer would dead-letter, and an unacknowledged publish is a 503, never a 202."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from kafka.errors import KafkaTimeoutError

from services.identity import messages
from services.identity.app import create_app
from services.identity.store.sqlite import SqliteIdentityStore
from shared.contract.events import MAX_EVENT_DEPTH
from shared.streaming.batch import Incoming
from tests.unit.identity.support import TickingClock, event, purchase, settings

OPERATOR = "k-operator"
HEADERS = {"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"}


class Api:
    def __init__(self, tmp_path, **overrides) -> None:
        self.sent: list = []
        self.broken = False
        s = settings(api_keys=f"{OPERATOR}:operator", pseudonym_secret="unit-test-key", **overrides)
        self.service = create_app(s, store=SqliteIdentityStore(tmp_path / "identity.db"), publish=self.publish,
                                  clock=TickingClock())
        self.http = TestClient(self.service.api, raise_server_exceptions=False)

    def publish(self, messages) -> None:
        if self.broken:
            raise KafkaTimeoutError("not acknowledged in time")
        self.sent.extend(messages)

    def post(self, body: bytes | str, **headers):
        return self.http.post("/v1/events", content=body, headers={**HEADERS, **headers})

    def consume(self):
        """What a worker makes of the published events."""
        batch = [Incoming(o.value, o.topic, 0, n, [], o.key) for n, o in enumerate(self.sent)]
        return messages.consume(batch, deps=self.service.deps)


@pytest.fixture
def api(tmp_path) -> Api:
    return Api(tmp_path)


def good(n: int) -> dict:
    return purchase(f"g{n}", {"member_id": f"M-{n}"}, "10.00")


def nested(levels: int):
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


# Each is written out as raw JSON text: a lone surrogate cannot even be built with json.dumps + encode.
BAD = {
    "lone_surrogate": ('{"x": "\\udfff"}', "invalid_json"),
    "one_megabyte_field": (json.dumps({"x": "y" * 1_000_000}), "too_large"),
    "nesting_300": (json.dumps({"x": nested(300)}), "too_deep"),
    "nesting_200": (json.dumps({"x": nested(200)}), "too_deep"),
    "nesting_just_over": (json.dumps({"x": nested(MAX_EVENT_DEPTH)}), "too_deep"),
    "usd": ('{"data": {"currency": "USD"}}', "unsupported_currency"),
    "long_currency": (json.dumps({"data": {"currency": "C" * 100_000}}), "invalid_event"),
    "epoch_time": ('{"time": 1700000000}', "invalid_event"),
    "nan": ('{"x": NaN}', "invalid_json"),
}


def with_bad(template: dict, patch: str) -> str:
    """``template`` as JSON text with ``patch`` merged in (``data`` one level down). An extra field ``x``
    is spliced in as written: a lone surrogate or NaN would not survive ``json.dumps`` unchanged."""
    extra = json.loads(patch)
    if list(extra) == ["x"]:
        return json.dumps(template)[:-1] + ", " + patch[1:]
    data = {**template["data"], **extra.pop("data", {})}
    return json.dumps({**template, **extra, "data": data})


@pytest.mark.parametrize("name", list(BAD))
@pytest.mark.parametrize("where", ["first", "last"])
def test_one_bad_event_is_rejected_alone_and_the_good_ones_are_published(api, name, where):
    patch, code = BAD[name]
    bad = with_bad(good(99), patch)
    goods = [json.dumps(good(n)) for n in range(3)]
    items = [bad, *goods] if where == "first" else [*goods, bad]
    r = api.post("[" + ",".join(items) + "]")
    assert r.status_code == 207, r.text
    body = r.json()
    bad_index = 0 if where == "first" else 3
    assert (body["accepted"], body["rejected"]) == (3, 1)
    (rejected,) = [x for x in body["results"] if x["status"] == "rejected"]
    assert (rejected["index"], rejected["code"]) == (bad_index, code) and rejected["reasons"]
    assert sorted(json.loads(o.value)["id"] for o in api.sent) == ["g0", "g1", "g2"]
    assert api.consume().processed == 3


@pytest.mark.parametrize("name", ["nesting_just_over", "lone_surrogate", "one_megabyte_field", "usd"])
def test_what_http_refuses_a_consumer_dead_letters_with_the_same_code(api, name):
    patch, code = BAD[name]
    raw = with_bad(good(1), patch).encode()
    assert api.post(raw).json()["results"][0]["code"] == code
    outcome = messages.consume([Incoming(raw, "crm.channel.pos", 0, 7, [])], deps=api.service.deps)
    assert (outcome.processed, outcome.dead_lettered, dict(outcome.counts)) == (0, 1, {f"dead_letter:{code}": 1})


def test_nesting_at_the_limit_is_accepted_on_both_sides(api):
    raw = json.dumps({**good(1), "x": nested(MAX_EVENT_DEPTH - 1)}).encode()
    assert api.post(raw).status_code == 202
    assert api.consume().processed == 1


def test_a_json_string_body_is_not_an_event(api):
    r = api.post(json.dumps(json.dumps(good(1))))
    assert r.status_code == 422
    assert r.json()["results"] == [{"index": 0, "status": "rejected", "code": "invalid_event",
                                    "reasons": ["event: must be a JSON object"]}]


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 422, "invalid_request"),
    (b"[" * 5000 + b"]" * 5000, 422, "invalid_request"),
    (b"[]", 422, "empty_batch"),
])
def test_a_body_that_cannot_be_read_is_one_clean_error(api, body, status, code):
    r = api.post(body)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code)
    assert api.sent == []


def test_only_json_is_taken(api):
    r = api.post(json.dumps(good(1)), **{"Content-Type": "text/plain"})
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media_type")
    assert api.sent == []


def test_another_currency_is_accepted_when_configured(tmp_path):
    api = Api(tmp_path, currencies="CNY,HKD")
    hkd = {**good(1), "data": {**good(1)["data"], "currency": "hkd"}}
    assert api.post(json.dumps(hkd)).status_code == 202


def test_an_unacknowledged_publish_is_a_503_with_retry_after_and_readyz_says_why(api):
    now = [100.0]
    api.service.runner.monotonic = lambda: now[0]
    api.broken = True
    r = api.post(json.dumps([good(1), good(2)]))
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.json()["error"]["code"] == "publish_unavailable"
    assert api.http.get("/readyz").json()["checks"]["progress"] == "ok"  # one failed publish is a blip
    now[0] += api.service.settings.stall_after_s
    assert api.post(json.dumps([good(1), good(2)])).status_code == 503
    ready = api.http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["progress"] == "failing: IngestPublishFailing"
    assert ready.json()["details"]["progress"] == "ingest failing for 30 s (KafkaTimeoutError)"
    api.broken = False
    assert api.post(json.dumps([good(1), good(2)])).status_code == 202
    assert api.http.get("/readyz").json()["checks"]["progress"] == "ok"


def test_an_event_posted_alone_still_works(api):
    r = api.post(json.dumps(event("v1", {"member_id": "M-1"})))
    assert r.status_code == 202 and r.json()["accepted"] == 1
