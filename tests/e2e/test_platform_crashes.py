"""Alerts and campaigns killed with SIGKILL while they consume, restarted, killed again while they catch up:
every complaint is one alert with its repeats counted once, and the campaign's groups, converters and
revenue equal the test's own sums of what was sent."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kafka import KafkaProducer

from crm.broker import free_port
from shared.contract import topics
from tests.conftest import wait_for
from tests.e2e.helpers import consumed

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PHONES = [f"138330{i:05d}" for i in range(60)]
PURCHASES_EACH = 150  # for every third customer but one in three: enough that consuming them takes a while


def _event(eid: str, kind: str, when: datetime, phone: str, source: str = "pos/SH-001", **data) -> dict:
    return {"specversion": "1.0", "id": eid, "source": source, "type": kind, "time": when.isoformat(),
            "data": {"identity": {"phone": phone}, **data}}


def _purchase(eid: str, when: datetime, phone: str, amount_fen: int) -> dict:
    return _event(eid, "crm.purchase", when, phone, order_id=eid, amount=f"{amount_fen // 100}.{amount_fen % 100:02d}",
                  currency="CNY", store_id="SH-001")


def _client(port: int, key: str = "test-admin") -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_sigkills_while_consuming_change_no_alert_and_no_campaign_figure(stack):
    ports = {name: free_port() for name in ("identity", "alerts", "campaigns")}
    procs = {name: stack.start_service(name, api_port=port) for name, port in ports.items()}
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")

    def send(events: list[dict]) -> None:
        for n, event in enumerate(events):
            channel = event["source"].split("/")[0]
            producer.send(topics.CHANNEL_TOPICS[channel], json.dumps(event).encode(), partition=n % 4)
        producer.flush()

    before = datetime.now(UTC) - timedelta(days=20)
    send([e for i, phone in enumerate(PHONES) for e in (
        _event(f"crash-cons-{i}", "crm.consent", before, phone, source="web/shop", purpose="sms", granted=True),
        _purchase(f"crash-pre-{i}", before, phone, 10_000))])
    earlier = 2 * len(PHONES)

    now = datetime.now(UTC)
    with _client(ports["campaigns"]) as ops, _client(ports["identity"]) as ident, _client(ports["alerts"]) as alerts:
        r = ops.post("/v1/campaigns", json={
            "name": "crash drill", "objective": "promotion", "channel": "sms", "control_share": "0.3",
            "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=10)).isoformat(),
            "attribution_window_days": 7})
        assert r.status_code == 201, r.text
        cid = r.json()["campaign_id"]
        wait_for(lambda: ops.get(f"/v1/campaigns/{cid}/preview").json()["members"] == len(PHONES), timeout=120,
                 what="campaigns has every customer's facts")
        launched = ops.post(f"/v1/campaigns/{cid}/launch")
        assert launched.status_code == 200, launched.text
        at = datetime.fromisoformat(launched.json()["launched_at"].replace("Z", "+00:00"))
        ids = {phone: ident.get("/v1/customers/lookup", params={"phone": phone}).json()["customer_id"]
               for phone in PHONES}
        groups = {m["member_id"]: m["group"]
                  for m in ops.get(f"/v1/campaigns/{cid}/audience", params={"limit": 1000}).json()["items"]}
        assert set(groups) == set(ids.values())

        # After the launch: two in three customers buy many times; every fourth complains (every eighth twice),
        # dated before now (an alert for a complaint stamped in the future waits for its time).
        wave, spend, complaints, said = [], {}, {}, datetime.now(UTC) - timedelta(seconds=10)
        for i, phone in enumerate(PHONES):
            if i % 3:
                amounts = [(i % 7 + 1) * 100 + j for j in range(PURCHASES_EACH)]
                wave += [_purchase(f"crash-post-{i}-{j}", at + timedelta(minutes=1, seconds=j), phone, fen)
                         for j, fen in enumerate(amounts)]
                spend[ids[phone]] = sum(amounts)
            if i % 4 == 0:
                complaints[ids[phone]] = 2 if i % 8 == 0 else 1
                wave += [_event(f"crash-cx-{i}-{k}", "crm.complaint", said + timedelta(seconds=k), phone,
                                text="cold food", store_id="SH-001") for k in range(complaints[ids[phone]])]
        send(wave)
        total = earlier + len(wave)

        def kill_midway(least: dict[str, float], most: dict[str, float], round_: int) -> dict[str, float]:
            # Each service is killed as soon as it has consumed ``least`` messages, and must not have consumed
            # ``most`` by then (it was mid-stream); then both restart.
            at_kill: dict[str, float] = {}
            deadline = time.monotonic() + 120
            while len(at_kill) < len(least):
                assert time.monotonic() < deadline, f"no progress to kill at (killed so far: {at_kill})"
                for name in least.keys() - at_kill.keys():
                    if (n := consumed(ports[name], topics.CUSTOMER_EVENTS)) >= least[name]:
                        os.killpg(procs[name].pid, signal.SIGKILL)
                        at_kill[name] = n
                time.sleep(0.01)
            for name, n in at_kill.items():
                assert n < most[name], f"{name} had consumed everything when it was killed; the test proves nothing"
                procs[name].wait(timeout=10)
                procs[name] = stack.start_service(name, api_port=ports[name], log_name=f"{name}-{round_}")
            return at_kill

        # Killed a quarter through the wave; then killed again once catching up (consuming, not done: what is
        # left is at least what had not been consumed at the first kill), and left to finish.
        names = ("alerts", "campaigns")
        first = kill_midway({n: earlier + len(wave) // 4 for n in names}, {n: total for n in names}, 2)
        kill_midway({n: 1 for n in names}, {n: total - first[n] for n in names}, 3)

        want = {g: (sum(1 for c in groups if groups[c] == g), sum(1 for c in spend if groups[c] == g),
                    sum(fen for c, fen in spend.items() if groups[c] == g)) for g in ("treatment", "control")}

        def overall():
            o = ops.get(f"/v1/campaigns/{cid}/results").json()["overall"]
            return {g: (o[g]["size"], o[g]["converters"], round(float(o[g]["revenue"]) * 100)) for g in want}

        wait_for(lambda: overall() == want, timeout=240, interval=1, what="campaign results over the whole wave")

        def complaint_alerts():
            page = alerts.get("/v1/alerts", params={"type": "complaint", "limit": 500}).json()
            return {a["customer_id"]: a["repeats"] + 1 for a in page["items"]}

        wait_for(lambda: complaint_alerts() == complaints, timeout=240, interval=1,
                 what="one complaint alert per complaining customer, every complaint counted once")
