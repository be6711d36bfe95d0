"""Rate limits and ingestion shedding on a service API: exact budgets, 429/503 with Retry-After, refills
on a clock the test moves (no sleeps)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
from fastapi import APIRouter, Body, Request
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from crm.broker import free_port
from shared.http.api import caller_dep, service_api
from shared.http.errors import NotFound
from shared.http.ratelimit import Bucket, RateLimits, parse_rate
from shared.settings import Settings

ADMIN, OPERATOR, READER = "k-admin", "k-operator", "k-reader"
KNOWN_PHONE = "13800138000"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _routes() -> APIRouter:
    r = APIRouter()

    @r.get("/things")
    def things(caller=caller_dep("reader")) -> dict:
        return {"ok": True}

    @r.get("/customers/lookup")
    def lookup(phone: str, caller=caller_dep("reader")) -> dict:
        if phone != KNOWN_PHONE:
            raise NotFound("customer_not_found", "no customer has that identifier")
        return {"customer_id": "c_1"}

    @r.post("/events", status_code=202)
    async def events(request: Request, body=Body(...), caller=caller_dep("operator")) -> dict:
        gate = request.app.state.gate
        if isinstance(gate, threading.Event):
            await asyncio.to_thread(gate.wait)
        elif gate is not None:
            await gate.wait()
        return {"accepted": len(body) if isinstance(body, list) else 1}

    return r


def _app(clock: Clock, **limits):
    settings = Settings(_env_file=None, api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader", **limits)
    app = service_api("test", settings, [_routes()], {}, CollectorRegistry())
    app.state.rate_limits = RateLimits(settings, clock=clock)
    app.state.gate = None
    return app


def _get(client: TestClient, url: str, key: str | None, **params):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.get(url, headers=headers, params=params)


def test_a_key_gets_its_burst_then_429_with_retry_after_then_again_once_refilled():
    clock = Clock()
    client = TestClient(_app(clock, rate_limit="5/second", rate_limit_burst=5))
    assert [_get(client, "/v1/things", READER).status_code for _ in range(5)] == [200] * 5
    r = _get(client, "/v1/things", READER)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert r.json() == {"error": {"code": "rate_limited",
                                  "message": "too many requests for this key; retry after the time in Retry-After",
                                  "details": {"budget": "requests", "retry_after_s": 1}}}
    # Another key has its own budget; health routes are never limited.
    assert _get(client, "/v1/things", ADMIN).status_code == 200
    assert client.get("/livez").status_code == 200
    clock.now += 0.2  # one request's worth of refill
    assert _get(client, "/v1/things", READER).status_code == 200
    assert _get(client, "/v1/things", READER).status_code == 429


def test_requests_without_a_known_key_are_limited_per_client_address():
    clock = Clock()
    client = TestClient(_app(clock, anonymous_rate_limit="3/minute", anonymous_rate_limit_burst=3))
    assert [_get(client, "/v1/things", key).status_code for key in (None, "guess-1", "guess-2")] == [401] * 3
    r = _get(client, "/v1/things", "guess-3")
    assert (r.status_code, r.headers["retry-after"], r.json()["error"]["details"]["budget"]) == (429, "20", "anonymous")
    assert _get(client, "/v1/things", READER).status_code == 200  # a known key is counted as itself
    clock.now += 20
    assert _get(client, "/v1/things", None).status_code == 401


def test_failed_lookups_spend_the_miss_budget_and_successful_ones_do_not():
    clock = Clock()
    client = TestClient(_app(clock, lookup_rate_limit="100/minute", lookup_rate_limit_burst=100,
                             lookup_miss_limit="30/hour", lookup_miss_limit_burst=3))
    for _ in range(5):
        assert _get(client, "/v1/customers/lookup", READER, phone=KNOWN_PHONE).status_code == 200
    assert [_get(client, "/v1/customers/lookup", READER, phone=f"1380013{i:04d}").status_code
            for i in range(3)] == [404] * 3
    r = _get(client, "/v1/customers/lookup", READER, phone=KNOWN_PHONE)
    assert (r.status_code, r.headers["retry-after"], r.json()["error"]["details"]["budget"]) == (429, "120",
                                                                                                 "lookup_misses")
    # Admins read phones unmasked anyway: their lookups are not counted.
    assert _get(client, "/v1/customers/lookup", ADMIN, phone="13800000000").status_code == 404
    clock.now += 120
    assert _get(client, "/v1/customers/lookup", READER, phone=KNOWN_PHONE).status_code == 200


def test_lookups_have_their_own_budget_below_the_general_one():
    clock = Clock()
    client = TestClient(_app(clock, lookup_rate_limit="20/minute", lookup_rate_limit_burst=2))
    assert [_get(client, "/v1/customers/lookup", OPERATOR, phone=KNOWN_PHONE).status_code
            for _ in range(3)] == [200, 200, 429]
    assert _get(client, "/v1/things", OPERATOR).status_code == 200
    clock.now += 3
    assert _get(client, "/v1/customers/lookup", OPERATOR, phone=KNOWN_PHONE).status_code == 200


def test_enumerating_a_masked_phones_middles_is_throttled_to_weeks_by_default():
    clock = Clock()
    client = TestClient(_app(clock))
    answered = 0
    for middle in range(10_000):
        r = _get(client, "/v1/customers/lookup", READER, phone=f"139{middle:04d}8000")
        if r.status_code == 429:
            break
        answered += 1
    # The default miss budget: a burst of 20, then one guess per 2 minutes.
    assert answered == 20 and r.json()["error"]["details"]["budget"] == "lookup_misses"
    assert r.headers["retry-after"] == "120"
    seconds_for_all = (10_000 - 20) * parse_rate(Settings(_env_file=None).lookup_miss_limit)[1] / 30
    assert seconds_for_all / 86400 > 13


def _post(client: TestClient, key: str, events: int):
    return client.post("/v1/events", headers={"Authorization": f"Bearer {key}"},
                       json=[{"id": str(i)} for i in range(events)])


def test_ingestion_is_charged_per_event_not_per_request():
    clock = Clock()
    client = TestClient(_app(clock, ingest_event_limit="1000/second", ingest_event_limit_burst=1500))
    assert _post(client, OPERATOR, 1000).status_code == 202
    r = _post(client, OPERATOR, 1000)
    assert (r.status_code, r.headers["retry-after"], r.json()["error"]["details"]["budget"]) == (429, "1", "events")
    assert _post(client, OPERATOR, 500).status_code == 202
    clock.now += 0.999
    assert _post(client, OPERATOR, 1000).status_code == 429
    clock.now += 0.001
    assert _post(client, OPERATOR, 1000).status_code == 202


def test_a_request_the_gate_refuses_spends_no_events_and_holds_no_slot():
    clock = Clock()
    app = _app(clock, ingest_event_limit="1000/second", ingest_event_limit_burst=1500, max_body_bytes=64 * 1024)
    client = TestClient(app)
    body = json.dumps([{"id": str(i)} for i in range(1000)])
    refused = [
        client.post("/v1/events", content=body, headers={"Authorization": f"Bearer {READER}",
                                                         "Content-Type": "application/json"}).status_code,
        client.post("/v1/events", content=body, headers={"Authorization": f"Bearer {OPERATOR}",
                                                         "Content-Type": "text/plain"}).status_code,
        client.post("/v1/events", content=json.dumps([{"id": "x" * 100_000}]),
                    headers={"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"}).status_code,
    ]
    assert refused == [403, 415, 413]
    # The budget is whole: 1,000 events pass, and only a further 1,000 would be over the burst of 1,500.
    assert _post(client, OPERATOR, 1000).status_code == 202
    assert _post(client, OPERATOR, 1000).status_code == 429
    assert app.state.rate_limits.in_flight == 0


def test_ingestion_beyond_the_in_flight_bound_is_shed_with_503_at_once():
    clock = Clock()
    app = _app(clock, ingest_max_in_flight=2)

    async def scenario():
        app.state.gate = asyncio.Event()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            headers = {"Authorization": f"Bearer {OPERATOR}"}
            held = [asyncio.create_task(client.post("/v1/events", headers=headers, json=[{"id": i}]))
                    for i in range(2)]
            while app.state.rate_limits.in_flight < 2:
                await asyncio.sleep(0)
            shed = await client.post("/v1/events", headers=headers, json=[{"id": 3}])
            app.state.gate.set()
            done = [await t for t in held]
            after = await client.post("/v1/events", headers=headers, json=[{"id": 4}])
        return shed, done, after

    shed, done, after = asyncio.run(scenario())
    assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
    assert shed.json()["error"]["code"] == "overloaded"
    assert [d.status_code for d in done] == [202, 202] and after.status_code == 202
    assert app.state.rate_limits.in_flight == 0


def test_a_shed_request_leaves_its_connection_usable_for_the_next_one():
    import uvicorn

    app = _app(Clock(), ingest_max_in_flight=1)
    app.state.gate = threading.Event()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    headers = {"Authorization": f"Bearer {OPERATOR}"}
    body = [{"id": i, "pad": "x" * 2000} for i in range(1000)]  # ~2 MB, answered before it is read
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        holder = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers)
        held = threading.Thread(target=lambda: holder.post("/v1/events", json=[{"id": "held"}]))
        held.start()
        while app.state.rate_limits.in_flight < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        # One connection only: the next requests must reuse the one that was answered 503.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                          limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)) as client:
            statuses = [client.post("/v1/events", json=body).status_code for _ in range(3)]
            app.state.gate.set()
            held.join(timeout=10)
            statuses.append(client.post("/v1/events", json=body).status_code)
        holder.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert statuses == [503, 503, 503, 202]


def test_the_ingested_body_reaches_the_route_unchanged():
    client = TestClient(_app(Clock()))
    body = [{"id": "a", "data": {"x": "y" * 100_000}}, {"id": "b"}]
    r = client.post("/v1/events", content=json.dumps(body),
                    headers={"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"})
    assert (r.status_code, r.json()) == (202, {"accepted": 2})


def test_rate_limits_can_be_switched_off():
    client = TestClient(_app(Clock(), rate_limits=False, rate_limit="1/hour", rate_limit_burst=1))
    assert [_get(client, "/v1/things", READER).status_code for _ in range(3)] == [200] * 3


def test_bucket_retry_after_is_exact_for_a_cost():
    clock = Clock()
    bucket = Bucket("10/second", 10, clock=clock)
    assert bucket.take("k", 10) == 0
    assert bucket.take("k", 4) == pytest.approx(0.4)
    clock.now += 0.4
    assert bucket.take("k", 4) == 0


@pytest.mark.parametrize("text", ["50", "0/second", "5/fortnight", "x/minute"])
def test_a_malformed_rate_setting_is_refused_at_start_up(text):
    with pytest.raises(ValueError):
        Settings(_env_file=None, rate_limit=text)
