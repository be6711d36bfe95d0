"""A reader who knows a masked phone (138****8000) cannot try its 10,000 middles: identity's lookup
answers 429 after the miss budget, even for the right guess, until the budget refills (issue 10)."""

from __future__ import annotations

from shared.http.ratelimit import RateLimits
from tests.integration.identity.test_api_on_every_store import OPERATOR, READER, Platform
from tests.unit.identity.support import purchase


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_trying_a_masked_phones_middles_is_stopped_after_the_miss_budget(store):
    platform = Platform(store)
    clock = Clock()
    api = platform.service.api
    api.state.rate_limits = RateLimits(platform.service.settings, clock=clock)
    r = platform.call("POST", "/v1/events", OPERATOR, json=[purchase("p1", {"phone": "13891238000"}, "10.00")])
    assert r.status_code == 202
    platform.consume()
    masked = platform.call("GET", "/v1/customers/lookup", READER, params={"phone": "13891238000"}).json()["phone"]
    assert masked == "138****8000"

    statuses = [platform.call("GET", "/v1/customers/lookup", READER, params={"phone": f"138{m:04d}8000"}).status_code
                for m in range(25)]
    assert statuses == [404] * 20 + [429] * 5
    right = platform.call("GET", "/v1/customers/lookup", READER, params={"phone": "13891238000"})
    assert (right.status_code, right.headers["retry-after"]) == (429, "120")
    clock.now += 120
    assert platform.call("GET", "/v1/customers/lookup", READER, params={"phone": "13891238000"}).status_code == 200
