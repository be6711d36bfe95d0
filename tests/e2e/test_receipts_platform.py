"""Delivery receipts end to end (issue 14): identity and campaigns started as a user starts them, a campaign
launched through the API, its touches read off ``crm.campaigns.touches`` as a channel system reads them,
``crm.delivery`` receipts posted to identity's ``POST /v1/events``; the results show the exact rates, the
replying member alone gets the follow-up touch, and the reply text never reaches a log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kafka import KafkaConsumer

from crm.broker import free_port
from shared.contract import topics
from tests.conftest import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PHONES = [f"139130{i:05d}" for i in range(8)]
REPLY = "确认，寄到 13700137000"


def _event(eid: str, source: str, kind: str, when: datetime, identity: dict, **data) -> dict:
    return {"specversion": "1.0", "id": eid, "source": source, "type": kind, "time": when.isoformat(),
            "data": {"identity": identity, **data}}


def _client(port: int, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _touches(bootstrap: str, campaign_id: str) -> list[dict]:
    consumer = KafkaConsumer(topics.CAMPAIGN_TOUCHES, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, group_id=None)
    try:
        return [v for m in consumer if (v := json.loads(m.value))["campaign_id"] == campaign_id]
    finally:
        consumer.close()


def test_receipts_through_identity_give_exact_rates_and_one_follow_up_on_the_running_platform(stack):
    id_port, cmp_port = free_port(), free_port()
    stack.start_service("identity", api_port=id_port)
    stack.start_service("campaigns", api_port=cmp_port)
    before = datetime.now(UTC) - timedelta(days=5)
    now = datetime.now(UTC)
    with _client(cmp_port, "test-operator") as ops, _client(id_port, "test-operator") as ident:
        consents = [_event(f"rx-cons-{i}", "web/shop", "crm.consent", before, {"phone": p}, purpose="sms",
                           granted=True) for i, p in enumerate(PHONES)]
        assert ident.post("/v1/events", json=consents).status_code == 202
        r = ops.post("/v1/campaigns", json={
            "name": "e2e sample invite", "objective": "product_launch", "channel": "sms", "control_share": "0.01",
            "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=10)).isoformat(),
            "offer": {"text": "回复确认领取小样"},
            "follow_up": {"on": "replied", "match": "确认", "channel": "mail", "offer": {"sample": "SK-9"}}})
        assert r.status_code == 201, r.text
        cid = r.json()["campaign_id"]
        wait_for(lambda: ops.get(f"/v1/campaigns/{cid}/preview").json()["members"] == len(PHONES), timeout=120,
                 what="campaigns has every customer's consent")
        launched = ops.post(f"/v1/campaigns/{cid}/launch")
        assert launched.status_code == 200, launched.text
        treated = launched.json()["launch"]["treatment"]
        assert treated >= 4  # a 1% control share: at most a few of the 8 (the split is a hash of the ids)
        sent = wait_for(lambda: len(t := _touches(stack.bootstrap, cid)) == treated and t, timeout=60,
                        what="the launch's touches on crm.campaigns.touches")
        phone_of = {ident.get("/v1/customers/lookup", params={"phone": p}).json()["customer_id"]: p for p in PHONES}
        t = sorted(sent, key=lambda x: x["customer_id"])
        at = now + timedelta(minutes=1)

        def receipt(eid: str, touch: dict, status: str, **data) -> dict:
            return _event(eid, "web/sms-gateway", "crm.delivery", at, {"phone": phone_of[touch["customer_id"]]},
                          touch_id=touch["touch_id"], status=status, **data)

        receipts = [receipt("rx-0a", t[0], "delivered"), receipt("rx-0b", t[0], "replied", reply_text=REPLY),
                    receipt("rx-1a", t[1], "failed", reason="空号"), receipt("rx-2a", t[2], "opened"),
                    receipt("rx-3a", t[3], "replied", reply_text="不用了")]
        assert ident.post("/v1/events", json=receipts).status_code == 202
        assert ident.post("/v1/events", json=receipts[:2]).status_code == 202  # redelivered: changes nothing

        # By hand: delivered t0 t2 t3, failed t1, opened t0 t2 t3, replied t0 t3; one follow-up (t0 matched).
        want = {"touches": treated, "delivered": 3, "failed": 1, "opened": 3, "replied": 2,
                "pending": treated - 4, "delivery_rate": 3 / treated, "failure_rate": 1 / treated,
                "open_rate": 3 / treated, "reply_rate": 2 / treated, "failure_reasons": {"空号": 1},
                "follow_ups": 1, "mismatched_replies": 0}
        wait_for(lambda: ops.get(f"/v1/campaigns/{cid}/results").json()["overall"]["treatment"]["delivery"] == want,
                 timeout=120, what="results with every receipt")
        follow_ups = wait_for(lambda: [x for x in _touches(stack.bootstrap, cid) if x.get("step") == "follow_up"],
                              timeout=60, what="the follow-up touch")
        assert [(x["customer_id"], x["channel"], x["offer"]) for x in follow_ups] == [
            (t[0]["customer_id"], "mail", {"sample": "SK-9"})]
    logs = stack.logs()
    assert "Traceback" not in logs and REPLY not in logs and "13700137000" not in logs
    assert not any(p in logs for p in PHONES)
    spans = (stack.data_dir / "traces.jsonl").read_text(errors="replace")  # every event traced in tests
    assert "crm.delivery" in spans and "13700137000" not in spans
    assert REPLY not in spans and json.dumps(REPLY)[1:-1] not in spans  # as written or JSON-escaped
