"""Campaigns end to end: identity and campaigns started as a user starts them, channel events through
Kafka, a campaign defined, launched and measured through the HTTP API, the result checked against
the test's own computation of who is in which group and who converted."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from statistics import NormalDist

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer

from crm.broker import free_port
from shared.contract import topics
from tests.conftest import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PHONES = [f"139120{i:05d}" for i in range(30)]
PHONE_P = "13912099999"
OPENID_W = "o-e2e-campaign-w"


def _event(eid: str, source: str, kind: str, when: datetime, identity: dict, **data) -> dict:
    return {"specversion": "1.0", "id": eid, "source": source, "type": kind, "time": when.isoformat(),
            "data": {"identity": identity, **data}}


def _purchase(eid: str, when: datetime, identity: dict, amount: str, order: str | None = None) -> dict:
    return _event(eid, "pos/SH-001", "crm.purchase", when, identity, order_id=order or eid, amount=amount,
                  currency="CNY", store_id="SH-001", items=[{"sku": "SK-1", "category": "skincare"}])


def _group(campaign_id: str, customer_id: str, share: float) -> str:
    digest = hashlib.sha256(f"{campaign_id}\x00{customer_id}".encode()).digest()
    return "control" if int(digest[:8].hex(), 16) % 1_000_000 < round(share * 1_000_000) else "treatment"


def _client(port: int, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_campaign_defined_launched_and_measured_through_the_api_on_the_running_platform(stack):
    id_port, cmp_port = free_port(), free_port()
    stack.env["CRM_CAMPAIGNS_SCHEDULER_INTERVAL_S"] = "1"
    stack.start_service("identity", api_port=id_port)
    stack.start_service("campaigns", api_port=cmp_port)
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")

    def send(event: dict, partition: int = 0) -> None:
        channel = event["source"].split("/")[0]
        producer.send(topics.CHANNEL_TOPICS[channel], json.dumps(event).encode(), partition=partition)

    before = datetime.now(UTC) - timedelta(days=20)
    for i, phone in enumerate(PHONES):
        who = {"phone": phone}
        if i != 0:  # customer 0 never consents
            send(_event(f"e2e-cons-{i}", "web/shop", "crm.consent", before, who, purpose="sms", granted=True), i % 4)
        send(_event(f"e2e-prof-{i}", "wechat/mini", "crm.profile", before, who,
                    city="Shanghai" if i < 28 else "Beijing"), i % 4)
        send(_purchase(f"e2e-pre-{i}", before, who, "100.00"), i % 4)
    # w: known only by a WeChat OpenID (a provisional customer); p: a phone customer in Beijing.
    w = {"wechat_openid": OPENID_W}
    send(_event("e2e-w-follow", "wechat/oa", "crm.follow", before, w))
    send(_event("e2e-w-cons", "wechat/mini", "crm.consent", before, w, purpose="sms", granted=True))
    send(_event("e2e-w-prof", "wechat/mini", "crm.profile", before, w, city="Shanghai"))
    send(_event("e2e-p-prof", "wechat/mini", "crm.profile", before, {"phone": PHONE_P}, city="Beijing"))
    producer.flush()

    now = datetime.now(UTC)
    with _client(cmp_port, "test-operator") as ops, _client(id_port, "test-reader") as ident:
        r = ops.post("/v1/campaigns", json={
            "name": "e2e spring", "objective": "promotion", "channel": "sms", "control_share": "0.3",
            "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=10)).isoformat(),
            "attribution_window_days": 7, "audience": {"cities": ["Shanghai"]},
            "costs": {"fixed": "50.00", "per_touch": "0.20"}})
        assert r.status_code == 201, r.text
        cid = r.json()["campaign_id"]
        # 27 consenting Shanghai customers and w; customer 0 has no consent.
        wait_for(lambda: ops.get(f"/v1/campaigns/{cid}/preview").json()["members"] == 28, timeout=120,
                 what="campaigns has every customer's facts")
        launched = ops.post(f"/v1/campaigns/{cid}/launch")
        assert launched.status_code == 200, launched.text
        launch = launched.json()["launch"]
        assert (launch["matched"], launch["excluded"]["no_consent"], launch["members"]) == (29, 1, 28)
        at = datetime.fromisoformat(launched.json()["launched_at"].replace("Z", "+00:00"))

        ids = {phone: ident.get("/v1/customers/lookup", params={"phone": phone}).json()["customer_id"]
               for phone in PHONES}
        w_id = ident.get("/v1/customers/lookup", params={"wechat_openid": OPENID_W}).json()["customer_id"]
        p_id = ident.get("/v1/customers/lookup", params={"phone": PHONE_P}).json()["customer_id"]
        members = {ids[p]: p for p in PHONES[1:28]} | {w_id: "w"}
        groups = {c: _group(cid, c, 0.3) for c in members}
        audience = ops.get(f"/v1/campaigns/{cid}/audience", params={"limit": 1000}).json()
        assert {m["member_id"]: m["group"] for m in audience["items"]} == groups

        # After the launch: every other member buys; customer 2's purchase is refunded in full (the refund is
        # sent first: arrival order must not matter); w is bound to p's phone (identity merges w into p),
        # and p buys: w's membership converts through p.
        buyers = [i for i in range(2, 28, 2)]
        send(_event("e2e-refund-2", "pos/SH-001", "crm.refund", at + timedelta(minutes=2), {"phone": PHONES[2]},
                    order_id="e2e-post-2", amount="100.00"), 2 % 4)
        for i in buyers:
            send(_purchase(f"e2e-post-{i}", at + timedelta(minutes=1), {"phone": PHONES[i]}, "100.00"), i % 4)
        send(_event("e2e-bind", "wechat/mini", "crm.profile", at, {"phone": PHONE_P, **w}))
        send(_purchase("e2e-p-buy", at + timedelta(minutes=3), {"phone": PHONE_P}, "500.00"))
        producer.flush()

        converted = {ids[PHONES[i]] for i in buyers if i != 2} | {w_id}
        revenue = {c: 50_000 if c == w_id else 10_000 for c in converted}
        want = {g: (sum(1 for c in members if groups[c] == g), sum(1 for c in converted if groups[c] == g),
                    sum(revenue[c] for c in converted if groups[c] == g)) for g in ("treatment", "control")}

        def overall():
            o = ops.get(f"/v1/campaigns/{cid}/results").json()["overall"]
            return {g: (o[g]["size"], o[g]["converters"], round(float(o[g]["revenue"]) * 100)) for g in want}

        wait_for(lambda: overall() == want, timeout=180, what="results with every post-launch event")
        result = ops.get(f"/v1/campaigns/{cid}/results").json()
        (n_t, k_t, rev_t), (n_c, k_c, rev_c) = want["treatment"], want["control"]
        p_t, p_c = k_t / n_t, k_c / n_c
        half = NormalDist().inv_cdf(0.975) * math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
        lift = result["overall"]["lift"]
        assert lift["absolute"] == pytest.approx(p_t - p_c, rel=1e-9, abs=1e-12)
        assert (lift["ci_low"], lift["ci_high"]) == (pytest.approx(p_t - p_c - half), pytest.approx(p_t - p_c + half))
        assert result["cost"]["total"] == f"{50 + 0.2 * n_t:.2f}"
        assert result["overall"]["incremental_revenue"] == f"{(rev_t - rev_c * n_t / n_c) / 100:.2f}"

        # Identity shows the campaign in p's single customer view: w's membership, converted.
        def p_campaigns():
            return ident.get(f"/v1/customers/{p_id}").json()["campaigns"]

        wait_for(lambda: [(i["campaign_id"], i["group"], i["converted"]) for i in p_campaigns()]
                 == [(cid, groups[w_id], True)], timeout=120, what="p's view shows w's campaign")

        # A scheduled campaign is launched by the service's own timer once its start time comes.
        start = datetime.now(UTC) + timedelta(seconds=2)
        r = ops.post("/v1/campaigns", json={
            "name": "e2e scheduled", "objective": "loyalty", "channel": "sms", "audience": {"cities": ["Beijing"]},
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(days=10)).isoformat()})
        later = r.json()["campaign_id"]
        assert ops.post(f"/v1/campaigns/{later}/schedule").json()["status"] == "scheduled"
        row = wait_for(lambda: (x := ops.get(f"/v1/campaigns/{later}").json())["status"] == "running" and x,
                       timeout=60, what="the scheduled campaign launched")
        assert datetime.fromisoformat(row["launched_at"].replace("Z", "+00:00")) >= start
        assert row["launch"]["members"] >= 2  # customers 28 and 29 live in Beijing

    touches = KafkaConsumer(topics.CAMPAIGN_TOUCHES, bootstrap_servers=stack.bootstrap,
                            auto_offset_reset="earliest", consumer_timeout_ms=5000, group_id=None)
    sent = [(m.key.decode(), json.loads(m.value)) for m in touches]
    touches.close()
    first = [(k, v) for k, v in sent if v["campaign_id"] == cid]
    assert sorted(k for k, _ in first) == sorted(c for c, g in groups.items() if g == "treatment")
    assert all(v["channel"] == "sms" and k.startswith("c_") for k, v in sent)
    assert len(sent) - len(first) == row["launch"]["touches"]  # the scheduled launch's touches were relayed
    logs = stack.logs()
    assert "Traceback" not in logs and not any(phone in logs for phone in [*PHONES, PHONE_P])
