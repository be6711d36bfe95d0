"""Identity's HTTP API over every store backend: events in through ``POST /v1/events``, consumed by
the handler as the worker would, read back through lookup, view, timeline, merges, unmerge and
conflicts. No broker: ``publish`` is a list the test drains into the handler."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.identity import messages
from services.identity.app import create_app
from shared.streaming.batch import Incoming
from tests.unit.identity.support import PSEUDO, TickingClock, customer_of_phone, event, purchase, settings

ADMIN, OPERATOR, READER = "k-admin", "k-operator", "k-reader"
LI = "+8613800138000"


class Platform:
    """The identity service with a list for a broker: what the API publishes, the worker consumes."""

    def __init__(self, store) -> None:
        self.sent: list = []
        self.offset = 0
        s = settings(api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader",
                     pseudonym_secret="unit-test-key")
        self.service = create_app(s, store=store, publish=self.sent.extend, clock=TickingClock())
        self.http = TestClient(self.service.api)

    def call(self, method: str, url: str, key: str, **kw):
        return self.http.request(method, url, headers={"Authorization": f"Bearer {key}"}, **kw)

    def consume(self) -> None:
        """Hand what was published to the channel topics to the resolve handler, in order."""
        channel = [o for o in self.sent if ".channel." in o.topic]
        self.sent[:] = [o for o in self.sent if ".channel." not in o.topic]
        batch = []
        for o in channel:
            batch.append(Incoming(o.value, o.topic, 0, self.offset, list(o.headers), o.key))
            self.offset += 1
        outcome = messages.consume(batch, deps=self.service.deps)
        self.service.relay(outcome.outbox)


@pytest.fixture
def platform(store) -> Platform:
    return Platform(store)


def test_events_posted_over_http_make_a_single_customer_view(platform):
    r = platform.call("POST", "/v1/events", OPERATOR, json=[
        event("w1", {"wechat_openid": "oX-1"}, source="wechat/oa", kind="crm.follow", time="2026-05-01T09:00:00+08:00"),
        purchase("p1", {"phone": "138-0013-8000", "member_id": "M-1"}, "268.00", time="2026-05-02T10:00:00+08:00"),
        {"specversion": "1.0", "id": "bad"},
    ])
    assert r.status_code == 207 and (r.json()["accepted"], r.json()["rejected"]) == (2, 1)
    platform.consume()
    r = platform.call("POST", "/v1/events", OPERATOR, json=[
        event("b1", {"phone": "+86 138 0013 8000", "wechat_openid": "oX-1"}, source="wechat/mini",
              time="2026-05-03T10:00:00+08:00"),
        purchase("p2", {"wechat_openid": "oX-1"}, "31.50", source="wechat/mini", time="2026-05-04T10:00:00+08:00"),
    ])
    assert r.status_code == 202
    platform.consume()
    li, follower = customer_of_phone(LI), "c_" + PSEUDO("wechat_openid", "oX-1")

    seen_by_reader = platform.call("GET", "/v1/customers/lookup", READER, params={"phone": "13800138000"}).json()
    assert seen_by_reader["customer_id"] == li and seen_by_reader["phone"] == "138****8000"
    assert seen_by_reader["merged_from"] == [follower]
    assert seen_by_reader["stats"] == {
        "purchase_count": 2, "purchase_days": 2, "total_spend": "299.50", "refund_total": "0.00",
        "first_purchase_at": "2026-05-02T10:00:00+08:00", "last_purchase_at": "2026-05-04T10:00:00+08:00",
        "home_store": "SH-001"}
    assert platform.call("GET", f"/v1/customers/{follower}", ADMIN, params={"reveal": "true"}).json()["phone"] == LI

    first = platform.call("GET", f"/v1/customers/{li}/timeline", READER, params={"limit": 2}).json()
    rest = platform.call("GET", f"/v1/customers/{li}/timeline", READER,
                         params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [e["id"] for e in first["items"] + rest["items"]] == ["p2", "b1", "p1", "w1"]
    assert rest["next_cursor"] is None
    assert first["items"][1]["data"]["identity"]["phone"] == "138****8000"

    (merge,) = platform.call("GET", f"/v1/customers/{li}/merges", READER).json()["items"]
    assert (merge["survivor_id"], merge["merged_id"], merge["cause"]["event_id"]) == (li, follower, "b1")
    assert platform.call("POST", f"/v1/customers/{li}/unmerge", READER,
                         json={"merge_id": merge["merge_id"]}).status_code == 403
    undone = platform.call("POST", f"/v1/customers/{li}/unmerge", OPERATOR, json={"merge_id": merge["merge_id"]})
    assert undone.status_code == 200 and undone.json()["records"] == [follower]
    assert [o.topic for o in platform.sent][-1] == "crm.customer.merged"  # relayed once committed
    stats = platform.call("GET", f"/v1/customers/{follower}", READER).json()["stats"]
    assert (stats["purchase_count"], stats["total_spend"]) == (1, "31.50")

    platform.call("POST", "/v1/events", OPERATOR,
                  json=event("b2", {"phone": LI, "wechat_openid": "oX-1"}, source="wechat/mini"))
    platform.consume()
    (conflict,) = platform.call("GET", "/v1/identity/conflicts", READER).json()["items"]
    assert conflict["kind"] == "merge_was_undone" and conflict["customer_ids"] == sorted([li, follower])
    closed = platform.call("POST", f"/v1/identity/conflicts/{conflict['conflict_id']}", OPERATOR,
                           json={"status": "dismissed", "note": "two people, one tablet"})
    assert closed.status_code == 204
    assert platform.call("GET", "/v1/identity/summary", READER).json() == {
        "customers": 2, "dead_letters": 0, "open_conflicts": 0}


def test_unknown_customers_and_merges_are_404_with_a_code(platform):
    r = platform.call("GET", "/v1/customers/c_nobody", READER)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "customer_not_found")
    r = platform.call("GET", "/v1/customers/lookup", READER, params={"phone": "13900139000"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "customer_not_found")
    platform.call("POST", "/v1/events", OPERATOR, json=event("e1", {"phone": LI}))
    platform.consume()
    r = platform.call("POST", f"/v1/customers/{customer_of_phone(LI)}/unmerge", OPERATOR, json={"merge_id": "m_x"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "merge_not_found")
