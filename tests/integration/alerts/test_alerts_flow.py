"""The alerts service in-process against SQLite: messages in as the agent feeds them, the clock moved by
the test, results read through the HTTP API and the messages it publishes."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from time import time_ns
from zoneinfo import ZoneInfo

from services.alerts.domain.workflow import alert_id
from shared.access.keys import key_name
from shared.contract.messages import (
    AlertChanged,
    CustomerEventResolved,
    CustomerMerged,
    PointsExpiryAnnounced,
    TierChanged,
    ViewPartUpdated,
    encode,
)
from shared.settings import Settings
from tests.integration.alerts.harness import (
    OPERATOR,
    READER,
    Harness,
    channel,
    complaint,
    parts,
    purchase,
)

Z = ZoneInfo("Asia/Shanghai")


def noon(d: str) -> datetime:
    return datetime.combine(date.fromisoformat(d), time(12), Z)


def test_a_complaint_is_red_at_once_for_the_home_store_and_duplicates_raise_nothing(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    history = [purchase("c_a", f"p{i}", noon(d), "SH-002") for i, d in enumerate(["2026-11-01", "2026-11-08"])]
    x1 = complaint("c_a", "x1", noon("2026-11-20") - timedelta(hours=2), store="SH-001")
    before = time_ns() // 1000
    out = h.feed(*history, x1)
    assert (out.processed, out.duplicates) == (3, 0)
    [alert] = h.alerts()
    assert (alert["type"], alert["severity"], alert["status"], alert["store_id"], alert["repeats"]) == (
        "complaint", "red", "open", "SH-002", 0)  # routed to the home store, where the customer buys
    assert alert["alert_id"] == alert_id("c_a", "complaint", "complaint|pos/SH-001|x1")
    assert "apology letter" in alert["action"]
    published = h.take()
    assert [(m.kind, m.customer_id) for m in published] == [("alert.changed", "c_a"), ("view.part", "c_a")]
    view = published[1]
    # Versions never fall below the real clock in microseconds (so a rebuilt store still publishes "newer" parts).
    first = int(view.version)
    assert before <= first <= time_ns() // 1000 and len(view.version) == 20
    assert [(a["alert_id"], a["type"], a["severity"]) for a in view.value["open"]] == [
        (alert["alert_id"], "complaint", "red")]
    # Redelivered, replayed: nothing changes and nothing is published.
    again = h.feed(*history, x1)
    assert (again.processed, again.duplicates) == (0, 3)
    assert h.take() == [] and len(h.alerts()) == 1
    # A second complaint is a repeat of the open alert, not a second alert.
    h.feed(complaint("c_a", "x2", noon("2026-11-20") - timedelta(hours=1)))
    [alert] = h.alerts()
    assert alert["repeats"] == 1
    changed, part = h.take()
    assert (changed.kind, part.kind) == ("alert.changed", "view.part") and int(part.version) > first


def test_alerts_follow_the_survivor_of_a_merge_and_go_back_when_it_is_undone(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    t = noon("2026-11-20") - timedelta(hours=3)
    h.feed(complaint("c_a", "xa", t),
           complaint("c_b", "xb", t, store="SH-007"),
           channel("c_b", "crm.survey", "sb", t, {"score": 3}, source="wechat/oa"))
    a_complaint = h.open_types("c_a")["complaint"]
    b_open = h.open_types("c_b")
    assert sorted(b_open) == ["complaint", "survey_low"]
    h.take()
    merged = CustomerMerged(kind="customer.merged", merge_id="m1", survivor_id="c_a", merged_id="c_b",
                            records=["c_b"], at=h.advance(minutes=1))
    h.feed(merged)
    survivor = h.open_types("c_a")
    assert sorted(survivor) == ["complaint", "survey_low"]
    assert survivor["complaint"]["alert_id"] == a_complaint["alert_id"] and survivor["complaint"]["repeats"] == 1
    assert survivor["survey_low"]["alert_id"] == b_open["survey_low"]["alert_id"]
    assert h.store.active_alerts(["c_b"]) == []
    # A merged-away id answers with its survivor's alerts, as identity's view does, and says so.
    assert sorted(a["type"] for a in h.alerts(customer_id="c_b", status="open")) == ["complaint", "survey_low"]
    page = h.api.get("/v1/alerts", params={"customer_id": "c_b"}).json()
    assert page["customer_id"] == "c_a" and page["total"] == 2 + 1  # c_b's complaint, folded into c_a's
    views = parts(h.take())
    assert sorted(a["type"] for a in views["c_a"].value["open"]) == ["complaint", "survey_low"]
    assert views["c_b"].value["open"] == []
    # Undone: each customer gets back exactly the alerts raised for it.
    h.feed(CustomerMerged(kind="customer.unmerged", merge_id="m1", survivor_id="c_a", merged_id="c_b",
                          records=["c_b"], at=h.advance(minutes=1)))
    assert {k: (v["alert_id"], v["repeats"]) for k, v in h.open_types("c_a").items()} == {
        "complaint": (a_complaint["alert_id"], 0)}
    assert {k: v["alert_id"] for k, v in h.open_types("c_b").items()} == {
        k: v["alert_id"] for k, v in b_open.items()}
    views = parts(h.take())
    assert [a["type"] for a in views["c_a"].value["open"]] == ["complaint"]
    assert sorted(a["type"] for a in views["c_b"].value["open"]) == ["complaint", "survey_low"]


def test_a_merge_that_arrives_before_the_event_still_puts_the_alert_on_the_survivor(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    t = noon("2026-11-20") - timedelta(hours=3)
    h.feed(CustomerMerged(kind="customer.merged", merge_id="m2", survivor_id="c_s", merged_id="c_m",
                          records=["c_m"], at=t + timedelta(hours=1)))
    # Identity resolved this event to c_m before the merge; it arrives late.
    h.feed(complaint("c_m", "late", t, resolved_at=t))
    assert list(h.open_types("c_s")) == ["complaint"] and h.store.active_alerts(["c_m"]) == []


PRIOR_9 = ["2026-08-10", "2026-08-20", "2026-08-30", "2026-09-10", "2026-09-20", "2026-09-30", "2026-10-10",
           "2026-10-20", "2026-10-30"]


def test_time_based_rules_fire_as_the_clock_moves_past_their_due_times(tmp_path):
    h = Harness(tmp_path, noon("2026-11-30"))
    h.feed(*(purchase("c_v", f"v{i}", noon(d)) for i, d in enumerate([*PRIOR_9, "2026-11-05"])))
    assert {k: v["detail"] for k, v in h.open_types("c_v").items()} == {
        "churn_yellow": {"visits_last_30": 1, "visits_prior_90": 9}}
    h.take()
    # Nothing is due before 5 December, when 5 November leaves the last 30 days.
    h.now = noon("2026-12-04")
    assert h.scan()["customers"] == 0
    h.now = datetime.combine(date(2026, 12, 5), time(0, 0, 1), Z)
    result = h.scan()
    assert result["customers"] == 1
    now_open = h.open_types("c_v")
    assert list(now_open) == ["churn_red"]
    assert now_open["churn_red"]["detail"]["reason"] == "stopped_coming"
    [yellow] = h.alerts(type="churn_yellow")
    assert (yellow["status"], yellow["resolution"], yellow["resolved_by"]) == ("resolved", "cleared", "system")
    assert sorted(h.changes()) == [("c_v", "churn_red", "open"), ("c_v", "churn_yellow", "resolved")]
    # The customer comes back: the red light clears on consumption.
    h.now = noon("2026-12-06")
    h.feed(purchase("c_v", "back", noon("2026-12-06")))
    assert h.open_types("c_v") == {} and h.changes() == [("c_v", "churn_red", "resolved")]


def test_ack_and_resolve_record_who_when_and_note_and_suppression_holds_a_condition_back(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    h.feed(ViewPartUpdated(customer_id="c_l", part="loyalty", value={"points_balance": 6000, "tier": None},
                           version="2026-11-20T04:00:00.000000Z-000001"))
    [alert] = h.alerts()
    assert (alert["type"], alert["detail"]) == ("large_balance", {"points_balance": 6000})
    aid = alert["alert_id"]
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    assert h.api.post(f"/v1/alerts/{aid}/ack", headers={"Authorization": f"Bearer {READER}"}).status_code == 403
    h.advance(minutes=10)
    r = h.api.post(f"/v1/alerts/{aid}/ack", json={"note": "on it"}, headers=operator)
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    who = key_name(OPERATOR, Settings(_env_file=None).name_key())  # a display name, never a plain hash of the key
    assert (r.json()["acknowledged_by"], r.json()["acknowledged_at"]) == (who, "2026-11-20T04:10:00Z")
    assert h.api.post(f"/v1/alerts/{aid}/resolve", json={}, headers=operator).status_code == 422  # a note is due
    h.advance(minutes=20)
    r = h.api.post(f"/v1/alerts/{aid}/resolve", json={"note": "offered a gift set"}, headers=operator)
    body = r.json()
    # Alerts cannot tell a customer's name in a staff note: below admin its length only, an admin reads it.
    assert (body["status"], body["resolution"], body["note"], body["age_s"]) == (
        "resolved", "manual", "[note withheld: 18 characters]", 1800)
    read = h.api.get(f"/v1/alerts/{aid}").json()  # as admin
    assert read["note"] == "offered a gift set"
    assert read["acknowledged_note"] == "on it"  # the acknowledgement keeps its own note
    assert body["resolved_by"] == who
    conflict = h.api.post(f"/v1/alerts/{aid}/resolve", json={"note": "again"}, headers=operator)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "alert_resolved"
    assert h.api.post("/v1/alerts/al_nope/ack", headers=operator).status_code == 404
    assert [(c[1], c[2]) for c in h.changes()] == [("large_balance", "open"), ("large_balance", "acknowledged"),
                                                   ("large_balance", "resolved")]
    # The balance is still large, but the 30-day suppression keeps it from coming straight back.
    h.now = noon("2026-12-19")
    assert h.scan(full="true")["customers"] == 1
    assert h.open_types("c_l") == {}
    h.now = noon("2026-12-20") + timedelta(minutes=29)
    assert h.scan()["customers"] == 0
    h.now = noon("2026-12-20") + timedelta(minutes=30)
    assert h.scan()["customers"] == 1  # due exactly when the suppression ends, 30 days after the resolution
    back = h.open_types("c_l")["large_balance"]
    assert back["alert_id"] != aid


def test_sla_breach_and_age_are_visible_and_lists_filter_and_paginate(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    h.feed(*(complaint(f"c_{i}", f"x{i}", noon("2026-11-20") - timedelta(hours=1), store=f"SH-00{i % 2}")
             for i in range(5)))
    h.advance(hours=23)
    assert {a["sla_breached"] for a in h.alerts()} == {False}
    h.advance(hours=2)
    items = h.alerts()
    assert {a["sla_breached"] for a in items} == {True} and items[0]["age_s"] == 25 * 3600
    assert items[0]["sla_due_at"] == "2026-11-21T04:00:00Z"
    page = h.api.get("/v1/alerts", params={"store_id": "SH-000", "limit": 2, "offset": 0}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = h.api.get("/v1/alerts", params={"store_id": "SH-000", "limit": 2, "offset": 2}).json()["items"]
    assert {a["customer_id"] for a in page["items"] + rest} == {"c_0", "c_2", "c_4"}
    assert h.api.get("/v1/alerts", params={"severity": "info"}).json()["total"] == 0
    assert h.api.get("/v1/alerts", params={"severity": "purple"}).status_code == 422


def test_loyalty_moments_points_expiring_tier_upgrade_and_contact_cadence(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    expires = h.now + timedelta(days=30, hours=1)
    h.feed(PointsExpiryAnnounced(announcement_id="an1", customer_id="c_p", points=300, expires_at=expires,
                                 balance=900, at=h.now))
    assert h.open_types("c_p") == {}
    assert h.store.due_count(until_ms=int((h.now + timedelta(hours=1)).timestamp() * 1000)) == 1
    h.advance(hours=1)
    h.scan()
    assert h.open_types("c_p")["points_expiring"]["detail"] == {"points": 300,
                                                                  "expires_at": "2026-12-20T05:00:00+00:00"}

    h.feed(channel("c_t", "crm.profile", "pr1", h.now, {"attributes": {"account_manager": "am-7"}}),
           TierChanged(change_id="tc1", customer_id="c_t", previous="B", tier="A", direction="upgrade",
                       reason="monthly visits", at=h.now),
           TierChanged(change_id="tc0", customer_id="c_t", previous="A", tier="B", direction="downgrade",
                       reason="review", at=h.now - timedelta(days=40)),
           ViewPartUpdated(customer_id="c_t", part="loyalty", value={"points_balance": 100, "tier": "A"},
                           version="2026-11-20T05:00:00.000000Z-000001"))
    got = h.open_types("c_t")
    assert sorted(got) == ["contact_due", "tier_upgrade", "visit_due"]
    assert got["visit_due"]["manager"] == "am-7" and got["visit_due"]["detail"] == {"tier": "A", "cadence_days": 10}
    assert got["tier_upgrade"]["manager"] == "am-7" and got["tier_upgrade"]["detail"]["value"] == "A"
    assert h.alerts(manager="am-7", type="contact_due")[0]["detail"] == {"tier": "A", "cadence_days": 3}
    contact = got["contact_due"]["alert_id"]
    h.api.post(f"/v1/alerts/{contact}/resolve", json={"note": "called"})
    resolved_at = h.now
    assert "contact_due" not in h.open_types("c_t")
    h.now = resolved_at + timedelta(days=3) - timedelta(seconds=1)
    h.scan()
    assert "contact_due" not in h.open_types("c_t")
    h.now = resolved_at + timedelta(days=3)
    assert h.scan()["customers"] == 1
    assert h.open_types("c_t")["contact_due"]["alert_id"] != contact  # the next call of the A-tier cadence


def test_rules_are_listed_and_a_rules_file_is_reloaded_when_it_changes(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text('[{"type": "complaint", "severity": "yellow"}]')
    h = Harness(tmp_path, noon("2026-11-20"), rules_file=str(path))
    listed = h.api.get("/v1/alerts/rules").json()
    assert listed["source"] == "rules.json" and len(listed["items"]) == 12
    rules = {r["type"]: r for r in listed["items"]}
    assert rules["complaint"]["severity"] == "yellow" and rules["complaint"]["kind"] == "event"
    assert rules["churn_red"]["params"]["min_monthly_visits"] == 2.0 and rules["churn_red"]["kind"] == "condition"
    h.feed(complaint("c_r", "x1", h.now - timedelta(minutes=5)))
    assert h.open_types("c_r")["complaint"]["severity"] == "yellow"
    path.write_text('[{"type": "complaint", "enabled": false}, {"type": "survey_low", "params": {"max_score": 8}}]')
    rules = {r["type"]: r for r in h.api.get("/v1/alerts/rules").json()["items"]}
    assert rules["complaint"]["enabled"] is False and rules["survey_low"]["params"]["max_score"] == 8
    h.feed(channel("c_r", "crm.survey", "s1", h.now - timedelta(minutes=1), {"score": 8}, source="wechat/oa"))
    assert sorted(h.open_types("c_r")) == ["complaint", "survey_low"]  # a disabled rule leaves its alerts alone
    path.write_text("{broken")
    assert {r["type"]: r for r in h.api.get("/v1/alerts/rules").json()["items"]}["survey_low"]["params"][
        "max_score"] == 8  # a broken file is refused; the rules in force stay


def test_every_message_has_a_fate_garbage_is_dead_lettered_alone_and_other_kinds_are_ignored(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    broken = complaint("c_d", "x1", h.now).model_dump(mode="json")
    broken["event"]["data"].pop("identity")  # not a valid channel event
    out = h.feed(b"{not json", encode(CustomerEventResolved.model_validate(broken)),
                 AlertChanged(alert_id="al_x", customer_id="c_d", type="complaint", severity="red", status="open",
                              at=h.now),
                 complaint("c_d", "x2", h.now))
    assert (out.processed, out.dead_lettered, out.counts["ignored"]) == (1, 2, 1)
    letters = h.api.get("/v1/deadletters").json()
    assert letters["total"] == 2 and {x["code"] for x in letters["items"]} == {"invalid_json", "invalid_event"}
    assert list(h.open_types("c_d")) == ["complaint"]  # the good message in the same batch landed


def test_a_late_earlier_purchase_does_not_welcome_the_customer_a_second_time(tmp_path):
    h = Harness(tmp_path, noon("2026-11-02"))
    h.feed(purchase("c_w", "w1", noon("2026-11-01")))
    [welcome] = h.alerts(type="first_purchase")
    assert welcome["detail"] == {"first_purchase_day": "2026-11-01"}
    h.api.post(f"/v1/alerts/{welcome['alert_id']}/resolve", json={"note": "welcome call done"})
    # A till that was offline uploads an earlier purchase two days later: still the same first purchase
    # episode for the customer, already answered.
    h.advance(days=2)
    h.feed(purchase("c_w", "w0", noon("2026-10-30")))
    assert [(a["alert_id"], a["status"]) for a in h.alerts(type="first_purchase")] == [
        (welcome["alert_id"], "resolved")]


def test_lists_filter_on_sla_breach_open_and_resolved_to_the_microsecond(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    t0 = h.now
    h.feed(*(complaint(f"c_{i}", f"x{i}", t0 - timedelta(minutes=1)) for i in range(4)),
           ViewPartUpdated(customer_id="c_info", part="loyalty", value={"points_balance": 9000, "tier": None},
                           version="000000000001"))
    ids = {a["customer_id"]: a["alert_id"] for a in h.alerts()}
    operator = {"Authorization": f"Bearer {OPERATOR}"}

    def breached(flag: str, **params) -> list[str]:
        r = h.api.get("/v1/alerts", params={"sla_breached": flag, "limit": 500, **params})
        assert r.status_code == 200, r.text
        assert all(a["sla_breached"] is (flag == "true") for a in r.json()["items"])
        return sorted(a["customer_id"] for a in r.json()["items"])

    h.advance(hours=2)
    h.api.post(f"/v1/alerts/{ids['c_0']}/resolve", json={"note": "apology sent"}, headers=operator)
    h.now = t0 + timedelta(hours=24)  # red: 24 hours to resolve; due, not yet late
    assert breached("true") == []
    h.now = t0 + timedelta(hours=24, microseconds=1)
    assert breached("true") == ["c_1", "c_2", "c_3"]
    h.api.post(f"/v1/alerts/{ids['c_1']}/resolve", json={"note": "late"}, headers=operator)  # resolved late
    h.advance(hours=3)
    assert breached("true") == ["c_1", "c_2", "c_3"]
    assert breached("true", status="open") == ["c_2", "c_3"]
    assert breached("false") == ["c_0", "c_info"]  # resolved in time; info has 168 hours
    assert h.api.get("/v1/alerts", params={"sla_breached": "true"}).json()["total"] == 3


def test_unknown_types_are_refused_and_notes_show_phone_numbers_to_admins_only(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    h.feed(complaint("c_n", "x1", h.now - timedelta(minutes=5)))
    bad = h.api.get("/v1/alerts", params={"type": "vip_party"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    [alert] = h.alerts()
    note = "called 138-0013-8000 twice, no answer"
    h.api.post(f"/v1/alerts/{alert['alert_id']}/ack", json={"note": note},
               headers={"Authorization": f"Bearer {OPERATOR}"})
    h.api.post(f"/v1/alerts/{alert['alert_id']}/resolve", json={"note": "reached on +86 139 0000 1111 at last"},
               headers={"Authorization": f"Bearer {OPERATOR}"})
    # An admin sees them only when asking to reveal (issue 12: masked by default, the reveal audited).
    assert (h.alerts(reveal="true")[0]["acknowledged_note"], h.alerts(reveal="true")[0]["note"]) == (
        note, "reached on +86 139 0000 1111 at last")
    for key in (READER, OPERATOR, None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        seen = h.api.get("/v1/alerts", headers=headers).json()["items"][0]
        one = h.api.get(f"/v1/alerts/{alert['alert_id']}", headers=headers).json()
        # Below admin a note is withheld (alerts cannot tell a name in it); an admin (no key: the harness's
        # default) sees it scrubbed of phones.
        shown = (("called *******8000 twice, no answer", "reached on *********1111 at last") if key is None
                 else ("[note withheld: 37 characters]", "[note withheld: 36 characters]"))
        for got in (seen, one):
            assert (got["acknowledged_note"], got["note"]) == shown
        if key:
            refused = h.api.get("/v1/alerts", params={"reveal": "true"}, headers=headers)
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "reveal_forbidden"


def test_points_that_expired_unredeemed_close_the_reminder_saying_so(tmp_path):
    from shared.contract.messages import PointsExpired

    h = Harness(tmp_path, noon("2026-11-20"))
    expires = h.now + timedelta(days=20)
    h.feed(PointsExpiryAnnounced(announcement_id="an-x", customer_id="c_x", points=300, expires_at=expires,
                                 balance=900, at=h.now),
           PointsExpiryAnnounced(announcement_id="an-r", customer_id="c_r", points=200, expires_at=expires,
                                 balance=200, at=h.now))
    assert sorted(a["customer_id"] for a in h.alerts(type="points_expiring", status="open")) == ["c_r", "c_x"]
    # c_r redeems everything before the deadline; c_x lets 300 points expire.
    h.advance(days=5)
    h.feed(ViewPartUpdated(customer_id="c_r", part="loyalty", value={"points_balance": 0, "tier": None},
                           version="000000000002"))
    h.now = expires
    h.feed(PointsExpired(entry_id="e-x", customer_id="c_x", points=300, at=expires),
           ViewPartUpdated(customer_id="c_x", part="loyalty", value={"points_balance": 600, "tier": None},
                           version="000000000002"))
    closed = {a["customer_id"]: a for a in h.alerts(type="points_expiring")}
    assert (closed["c_x"]["status"], closed["c_x"]["resolved_by"], closed["c_x"]["note"]) == (
        "resolved", "system", "300 points expired unredeemed")
    assert closed["c_x"]["detail"]["expired_points"] == 300
    assert (closed["c_r"]["status"], closed["c_r"]["note"]) == ("resolved", "the condition no longer holds")
    assert "expired_points" not in closed["c_r"]["detail"]
    again = h.feed(PointsExpired(entry_id="e-x", customer_id="c_x", points=300, at=expires))
    assert (again.processed, again.duplicates) == (0, 1)


def test_a_new_customer_without_alerts_publishes_nothing_and_a_merge_republishes_both_parts(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    h.feed(purchase("c_n1", "n1", noon("2026-11-20") - timedelta(hours=1)),
           purchase("c_n2", "n2", noon("2026-11-20") - timedelta(hours=1)))
    assert h.take() == []  # no alert (a welcome is due tomorrow): no view part to announce
    h.feed(CustomerMerged(kind="customer.merged", merge_id="m9", survivor_id="c_n1", merged_id="c_n2",
                          records=["c_n2"], at=h.advance(minutes=1)))
    assert {c: v.value for c, v in parts(h.take()).items()} == {"c_n1": {"open": []}}


def test_duplicates_inside_one_batch_count_once_and_the_newest_loyalty_part_wins_wherever_it_sits(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    x1 = complaint("c_q", "x1", h.now - timedelta(minutes=5))
    announced = PointsExpiryAnnounced(announcement_id="an1", customer_id="c_q", points=100,
                                      expires_at=h.now + timedelta(days=10), balance=6000, at=h.now)
    upgrade = TierChanged(change_id="tc1", customer_id="c_q", previous="B", tier="A", direction="upgrade",
                          reason="visits", at=h.now)
    newer = ViewPartUpdated(customer_id="c_q", part="loyalty", value={"points_balance": 6000, "tier": "A"},
                            version="000000000002")
    older = ViewPartUpdated(customer_id="c_q", part="loyalty", value={"points_balance": 100, "tier": "B"},
                            version="000000000001")
    out = h.feed(x1, announced, newer, upgrade, x1, announced, older, upgrade)
    assert (out.processed, out.duplicates, out.dead_lettered) == (4, 4, 0)
    got = h.open_types("c_q")
    assert sorted(got) == ["complaint", "contact_due", "large_balance", "points_expiring", "tier_upgrade",
                           "visit_due"]
    assert got["complaint"]["repeats"] == 0 and got["large_balance"]["detail"] == {"points_balance": 6000}
    assert got["points_expiring"]["detail"]["points"] == 100


def test_events_alerts_does_not_read_are_ignored_without_evaluating_anyone(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"))
    t = h.now - timedelta(minutes=5)
    h.feed(channel("c_v", "crm.page_view", "v0", t, {"url": "https://shop.example/"}, source="web/shop"))
    # A known customer browses, follows, moves city: nothing the rules read, nobody to evaluate.
    out = h.feed(channel("c_v", "crm.page_view", "v1", t, {"url": "https://shop.example/p/1"}, source="web/shop"),
                 channel("c_v", "crm.follow", "f1", t, {}, source="wechat/oa"),
                 channel("c_v", "crm.profile", "pr1", t, {"city": "Shanghai"}, source="wechat/oa"))
    assert (out.processed, out.duplicates, out.counts["ignored"]) == (0, 0, 3)
    assert out.counts["evaluated"] == 0
    assert h.store.db.conn().execute("SELECT COUNT(*) FROM seen_events").fetchone()[0] == 0
    # A profile that sets what the rules read is a fact like any other.
    out = h.feed(channel("c_v", "crm.profile", "pr2", t, {"birthday": "1990-11-25"}, source="wechat/oa"))
    assert (out.processed, out.counts["evaluated"]) == (1, 1)
    assert h.open_types("c_v")["birthday"]["detail"]["days_until"] == 5
