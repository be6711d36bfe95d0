"""Delivery receipts (issue 14): a campaign whose touches get delivered / failed / opened / replied receipts
shows exact delivery, failure, open and reply rates in its results; duplicates change nothing; a reply that
matches the campaign's follow-up step sends the follow-up touch once, to the replying member only."""

from __future__ import annotations

import csv
import io

import pytest

from tests.integration.campaigns.scenario import World, campaign_id_for
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at

KEY = "receipts-spring"
CID = campaign_id_for(KEY)
BODY = {"name": "Sample invite", "objective": "product_launch", "channel": "sms", "starts_at": at(10).isoformat(),
        "ends_at": at(20).isoformat(), "control_share": "0.25", "costs": {"fixed": "0.00", "per_touch": "0.10"},
        "offer": {"text": "Reply 确认 to get a free sample"},
        "follow_up": {"on": "replied", "match": ["确认", "yes"], "channel": "mail",
                      "offer": {"sample": "SK-9"}}}
CUSTOMERS = [f"c_rc_{i:02d}" for i in range(16)]
YOUNG = set(CUSTOMERS[::2])  # born 2004: "<25" at the launch; the others born 1990: "35-44"


def delivery(customer: str, eid: str, when, touch_id: str, status: str, *, reason: str | None = None,
             reply_text: str | None = None, source: str = "web/sms-gateway", record: str | None = None):
    """Identity's resolved ``crm.delivery`` event, as a channel system reported it."""
    data = {"touch_id": touch_id, "status": status}
    if reason is not None:
        data["reason"] = reason
    if reply_text is not None:
        data["reply_text"] = reply_text
    return f.resolved(customer, f.channel_event("crm.delivery", eid, when, data, source), record=record)


@pytest.fixture
def world(store, tmp_path) -> World:
    return launched(store, tmp_path)


def launched(store, tmp_path, body: dict = BODY) -> World:
    """A world whose 16 customers consented to SMS, with the campaign ``body`` launched (as ``CID``)."""
    w = World(store, tmp_path)
    msgs = []
    for i, cid in enumerate(CUSTOMERS):
        msgs += [f.consent(cid, f"rc-cons-{i}", at(1), "sms", True),
                 f.profile(cid, f"rc-prof-{i}", at(1), birthday="2004-06-01" if cid in YOUNG else "1990-01-01")]
    w.feed(msgs)
    r = w.http.post("/v1/campaigns", json=body, headers={"Idempotency-Key": KEY})
    assert r.status_code == 201, r.text
    w.now = at(10)
    assert w.http.post(f"/v1/campaigns/{CID}/launch").status_code == 200
    return w


def touches(world: World) -> dict[str, dict]:
    """The touches published, by customer."""
    return {m["customer_id"]: m for m in world.messages("crm.campaigns.touches")}


def test_receipts_give_exact_rates_per_group_and_segment_and_a_reply_earns_one_follow_up(world):
    sent = touches(world)
    treated = sorted(sent)
    assert len(treated) == 10  # 16 members, 6 drawn into control by the 25% share (the split is a hash of the ids)
    tid = {c: sent[c]["touch_id"] for c in treated}
    t = treated
    receipts = [
        # t0: delivered, opened, replied to confirm; a late "delivered" after the reply undoes nothing.
        delivery(t[0], "r-0a", at(10, 1), tid[t[0]], "delivered"),
        delivery(t[0], "r-0b", at(10, 2), tid[t[0]], "opened"),
        delivery(t[0], "r-0c", at(10, 3), tid[t[0]], "replied", reply_text="确认, 请寄到 13800138000"),
        delivery(t[0], "r-0d", at(10, 4), tid[t[0]], "delivered"),
        # t1: delivered, replied something else: no follow-up.
        delivery(t[1], "r-1a", at(10, 1), tid[t[1]], "delivered"),
        delivery(t[1], "r-1b", at(10, 5), tid[t[1]], "replied", reply_text="no thanks"),
        # t2, t3: failed; t3 failed twice with one reason (it counts once).
        delivery(t[2], "r-2a", at(10, 1), tid[t[2]], "failed", reason="空号"),
        delivery(t[3], "r-3a", at(10, 1), tid[t[3]], "failed", reason="blocked"),
        delivery(t[3], "r-3b", at(10, 6), tid[t[3]], "failed", reason="blocked"),
        # t4 delivered only; t5 opened (which implies delivered) with no "delivered" receipt at all.
        delivery(t[4], "r-4a", at(10, 1), tid[t[4]], "delivered"),
        delivery(t[5], "r-5a", at(10, 2), tid[t[5]], "opened"),
    ]
    # The batch in reverse: arrival order must not matter (the "delivered" after t0's reply arrives first).
    world.now = at(10, 7)
    outcome = world.feed(list(reversed(receipts)))
    assert (outcome.processed, outcome.duplicates, outcome.dead_lettered) == (11, 0, 0)

    follow_ups = [m for m in world.messages("crm.campaigns.touches") if m.get("step") == "follow_up"]
    assert [(m["customer_id"], m["channel"], m["offer"], m["campaign_id"]) for m in follow_ups] == [
        (t[0], "mail", {"sample": "SK-9"}, CID)]

    results = world.http.get(f"/v1/campaigns/{CID}/results").json()
    treatment = results["overall"]["treatment"]
    # By hand, over 10 touches: delivered t0 t1 t4 t5 (4); failed t2 t3 (2); opened t0 t1 t5 (3: a reply was
    # read); replied t0 t1 (2); pending t6..t9 (4).
    assert treatment["delivery"] == {
        "touches": 10, "delivered": 4, "failed": 2, "opened": 3, "replied": 2, "pending": 4,
        "delivery_rate": 0.4, "failure_rate": 0.2, "open_rate": 0.3, "reply_rate": 0.2,
        "failure_reasons": {"blocked": 1, "空号": 1}, "follow_ups": 1, "mismatched_replies": 0}
    assert results["overall"]["control"]["delivery"] is None  # the control group got no touches
    # No receipt for the follow-up touch yet: nothing measured, not 0% delivered.
    assert results["follow_up"] == {
        "touches": 1, "delivered": 0, "failed": 0, "opened": 0, "replied": 0, "pending": 1,
        "delivery_rate": None, "failure_rate": None, "open_rate": None, "reply_rate": None, "failure_reasons": {},
        "follow_ups": 0, "mismatched_replies": 0}
    assert results["method"]["delivery_rate"].startswith("touches a crm.delivery receipt reported delivered")

    # Per segment: the same rule over each age band's touches.
    states = {t[0]: "replied", t[1]: "replied", t[2]: "failed", t[3]: "failed", t[4]: "delivered",
              t[5]: "opened"}
    for seg in results["breakdowns"]["age_band"]:
        band = [c for c in treated if (c in YOUNG) == (seg["segment"] == "<25")]
        got = seg["treatment"]["delivery"]
        delivered = sum(states.get(c) in ("delivered", "opened", "replied") for c in band)
        replied = sum(states.get(c) == "replied" for c in band)
        assert (got["touches"], got["delivered"], got["replied"]) == (len(band), delivered, replied)
        assert (got["delivery_rate"], got["reply_rate"]) == (delivered / len(band), replied / len(band))
    assert sorted(s["segment"] for s in results["breakdowns"]["age_band"]) == ["35-44", "<25"]

    # The CSV carries the same figures.
    rows = list(csv.DictReader(io.StringIO(world.http.get(f"/v1/campaigns/{CID}/results.csv").text)))
    [row] = [r for r in rows if (r["breakdown"], r["group"]) == ("overall", "treatment")]
    assert (row["touches"], row["delivered"], row["failed"], row["opened"], row["replied"]) == (
        "10", "4", "2", "3", "2")
    assert (row["delivery_rate"], row["reply_rate"], row["failure_reasons"], row["follow_ups"]) == (
        "0.400000", "0.200000", "blocked=1;空号=1", "1")
    [control] = [r for r in rows if (r["breakdown"], r["group"]) == ("overall", "control")]
    assert control["touches"] == "" and control["delivery_rate"] == ""
    [follow_row] = [r for r in rows if r["breakdown"] == "follow_up"]
    assert (follow_row["touches"], follow_row["delivered"]) == ("1", "0")

    # Duplicates change nothing: the same receipts again, and a second confirming reply from t0 (a new event).
    again = world.feed(receipts + [delivery(t[0], "r-0e", at(11), tid[t[0]], "replied", reply_text="yes")])
    assert (again.processed, again.duplicates) == (1, 11)
    assert world.http.get(f"/v1/campaigns/{CID}/results").json()["overall"] == results["overall"]
    assert len([m for m in world.messages("crm.campaigns.touches") if m.get("step") == "follow_up"]) == 1

    # The follow-up touch gets its own receipts (the sample was mailed and arrived).
    world.feed([delivery(t[0], "r-f1", at(12), follow_ups[0]["touch_id"], "delivered", source="pos/mailroom")])
    again = world.http.get(f"/v1/campaigns/{CID}/results").json()
    assert (again["follow_up"]["delivered"], again["follow_up"]["delivery_rate"]) == (1, 1.0)
    assert again["overall"]["treatment"]["delivery"] == treatment["delivery"]  # first touches unchanged

    # The member's export holds both touches and where their receipts left them (an admin's read).
    doc = world.http.get(f"/v1/customers/{t[0]}/export", headers={"Authorization": "Bearer ad"}).json()
    assert [(x["touch_id"], x["step"], x["channel"], x["status"]) for x in doc["touches"]] == [
        (tid[t[0]], "initial", "sms", "replied"), (follow_ups[0]["touch_id"], "follow_up", "mail", "delivered")]
    doc = world.http.get(f"/v1/customers/{t[2]}/export", headers={"Authorization": "Bearer ad"}).json()
    assert [(x["status"], x["failure_reason"]) for x in doc["touches"]] == [("failed", "空号")]


def test_a_receipt_for_an_unknown_touch_is_dead_lettered_with_its_reason_and_counts_nowhere(world):
    before = world.http.get(f"/v1/campaigns/{CID}/results").json()
    stray = delivery(CUSTOMERS[0], "r-stray", at(11), "t_000000000000000000000000", "delivered")
    outcome = world.feed([stray])
    assert (outcome.processed, outcome.dead_lettered) == (0, 1)
    [letter] = world.store.dead_letters()
    assert (letter.code, letter.offset) == ("unknown_touch", stray.offset)
    assert dict(letter.headers)["crm.dlq.reason"] == b"no campaign touch has this touch_id"
    assert [m.topic for m in outcome.outbox] == ["crm.deadletter"]
    assert world.http.get(f"/v1/campaigns/{CID}/results").json()["overall"] == before["overall"]
    # Not marked as seen: a re-drive reads it again (and, the touch still unknown, letters it once).
    assert world.feed([stray]).dead_lettered == 0 and world.store.dead_letter_count() == 1


def test_no_follow_up_without_a_match_to_a_control_member_or_once_the_campaign_is_not_running(world):
    sent = touches(world)
    treated = sorted(sent)
    # A reply to a follow-up touch earns nothing more; a paused campaign moves no one on.
    assert world.http.post(f"/v1/campaigns/{CID}/pause").status_code == 200
    world.feed([delivery(treated[6], "p-1", at(11), sent[treated[6]]["touch_id"], "replied", reply_text="确认")])
    assert not [m for m in world.messages("crm.campaigns.touches") if m.get("step") == "follow_up"]
    results = world.http.get(f"/v1/campaigns/{CID}/results").json()
    assert results["overall"]["treatment"]["delivery"]["replied"] == 1  # the reply still counts
    assert results["overall"]["treatment"]["delivery"]["follow_ups"] == 0


@pytest.mark.parametrize(("follow_up", "loc"), [
    ({"on": "replied", "match": ["k"] * 21}, "body.follow_up.match"),
    ({"on": "replied", "match": "x" * 51}, "body.follow_up.match"),
    ({"on": "replied", "match": ["确认", ""]}, "body.follow_up.match"),
    ({"on": "replied", "match": []}, "body.follow_up.match"),
    ({"on": "opened"}, "body.follow_up.on"),
    ({"on": "replied", "channel": "fax"}, "body.follow_up.channel"),
    ({"on": "replied", "offer": {"text": "x" * 5000}}, "body.follow_up.offer"),
    ({"on": "replied", "colour": "red"}, "body.follow_up.colour"),
])
def test_a_bad_follow_up_is_a_422_naming_the_field(world, follow_up, loc):
    r = world.http.post("/v1/campaigns", json={**BODY, "follow_up": follow_up})
    assert r.status_code == 422, r.text
    assert [d["loc"] for d in r.json()["error"]["details"]] == [loc]
    draft = world.http.post("/v1/campaigns", json={k: v for k, v in BODY.items() if k != "follow_up"}).json()
    r = world.http.patch(f"/v1/campaigns/{draft['campaign_id']}", json={"follow_up": follow_up})
    assert r.status_code == 422 and [d["loc"] for d in r.json()["error"]["details"]] == [loc]


def test_a_member_who_opted_out_of_the_follow_up_channel_is_not_followed_up_and_one_never_asked_is(world):
    sent = touches(world)
    treated = sorted(sent)
    out, asked = treated[7], treated[8]
    world.feed([f.consent(out, "rc-mail-out", at(10, 1), "mail", False)])
    world.feed([delivery(out, "o-1", at(11), sent[out]["touch_id"], "replied", reply_text="确认"),
                delivery(asked, "o-2", at(11), sent[asked]["touch_id"], "replied", reply_text="确认")])
    follow_ups = [m for m in world.messages("crm.campaigns.touches") if m.get("step") == "follow_up"]
    assert [m["customer_id"] for m in follow_ups] == [asked]
    delivery_figures = world.http.get(f"/v1/campaigns/{CID}/results").json()["overall"]["treatment"]["delivery"]
    assert (delivery_figures["replied"], delivery_figures["follow_ups"]) == (2, 1)
