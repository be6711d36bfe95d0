"""Issue 14 end to end without a broker: a channel system posts ``crm.delivery`` receipts to identity's
``POST /v1/events``; identity resolves them like every channel event and publishes them on
``crm.customer.events``; campaigns, fed exactly what identity published, counts them and sends the follow-up.
The reply text reaches the customer's timeline masked for a reader, and campaigns keeps none of it."""

from __future__ import annotations

from services.campaigns.store.sqlite import SqliteCampaignsStore
from services.identity.store.sqlite import SqliteIdentityStore
from shared.streaming.batch import Incoming
from tests.integration.campaigns.scenario import World, campaign_id_for
from tests.integration.identity.test_api_on_every_store import ADMIN, LI, OPERATOR, READER, Platform
from tests.unit.campaigns.factory import at
from tests.unit.identity.support import customer_of_phone, event

KEY = "receipts-through-identity"
CID = campaign_id_for(KEY)
REPLY = "确认 寄到 13900139000"


def forward(identity: Platform, campaigns: World) -> None:
    """What identity published on crm.customer.events, consumed by campaigns (the broker's part)."""
    out = [o for o in identity.sent if o.topic.endswith("crm.customer.events")]
    identity.sent[:] = [o for o in identity.sent if not o.topic.endswith("crm.customer.events")]
    outcome = campaigns.feed([Incoming(o.value, o.topic, 0, i, list(o.headers), o.key) for i, o in enumerate(out)])
    assert outcome.dead_lettered == 0


def test_receipts_posted_to_identity_reach_campaign_results_and_the_reply_is_masked_for_readers(tmp_path):
    identity = Platform(SqliteIdentityStore(tmp_path / "identity.db"))
    campaigns = World(SqliteCampaignsStore(tmp_path / "campaigns.db"), tmp_path)
    phone = {"phone": "138 0013 8000"}
    r = identity.call("POST", "/v1/events", OPERATOR, json=[
        event("cons-1", phone, kind="crm.consent", source="web/shop", time=at(1).isoformat(), purpose="sms",
              granted=True)])
    assert r.status_code == 202, r.text
    identity.consume()
    forward(identity, campaigns)
    body = {"name": "Invite", "objective": "product_launch", "channel": "sms", "starts_at": at(10).isoformat(),
            "ends_at": at(20).isoformat(), "control_share": "0.01",
            "follow_up": {"on": "replied", "match": "确认", "channel": "mail", "offer": {"sample": "SK-9"}}}
    assert campaigns.http.post("/v1/campaigns", json=body, headers={"Idempotency-Key": KEY}).status_code == 201
    campaigns.now = at(10)
    assert campaigns.http.post(f"/v1/campaigns/{CID}/launch").status_code == 200
    [touch] = campaigns.messages("crm.campaigns.touches")
    customer = customer_of_phone(LI)
    assert touch["customer_id"] == customer

    receipts = [event("dl-1", phone, kind="crm.delivery", source="web/sms-gateway", time=at(10, 1).isoformat(),
                      touch_id=touch["touch_id"], status="delivered"),
                event("dl-2", phone, kind="crm.delivery", source="web/sms-gateway", time=at(10, 2).isoformat(),
                      touch_id=touch["touch_id"], status="replied", reply_text=REPLY)]
    r = identity.call("POST", "/v1/events", OPERATOR, json=receipts)
    assert r.status_code == 202, r.text
    identity.consume()
    forward(identity, campaigns)

    delivery = campaigns.http.get(f"/v1/campaigns/{CID}/results").json()["overall"]["treatment"]["delivery"]
    assert (delivery["touches"], delivery["delivered"], delivery["replied"], delivery["reply_rate"],
            delivery["follow_ups"]) == (1, 1, 1, 1.0, 1)
    [follow_up] = [m for m in campaigns.messages("crm.campaigns.touches") if m["step"] == "follow_up"]
    assert (follow_up["customer_id"], follow_up["channel"]) == (customer, "mail")

    # The reply is on the customer's timeline: masked for a reader, as every free text is.
    items = identity.call("GET", f"/v1/customers/{customer}/timeline", READER).json()["items"]
    [replied] = [e for e in items if e["id"] == "dl-2"]
    assert replied["data"]["status"] == "replied" and replied["data"]["touch_id"] == touch["touch_id"]
    assert replied["data"]["reply_text"] != REPLY and "13900139000" not in replied["data"]["reply_text"]
    revealed = identity.http.get(f"/v1/customers/{customer}/timeline", params={"reveal": "true"},
                                 headers={"Authorization": f"Bearer {ADMIN}",
                                          "X-Reason": "customer asked what they replied"}).json()["items"]
    assert [e["data"]["reply_text"] for e in revealed if e["id"] == "dl-2"] == [REPLY]
    # Campaigns keeps no reply text anywhere in its store.
    files = b"".join(p.read_bytes() for p in tmp_path.glob("campaigns.db*"))  # the WAL too
    assert b"touches" in files and "寄到".encode() not in files and b"13900139000" not in files
