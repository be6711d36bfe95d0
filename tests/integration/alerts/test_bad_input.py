"""The alerts routes against what a careless operator or an attacker sends (issue 10, findings 2 and 4): a scan
as of a moment outside the window around the service clock is refused and changes nothing, timestamps are
stored fixed-width, and nothing answers 500."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tests.integration.alerts.harness import OPERATOR, Harness, purchase

Z = ZoneInfo("Asia/Shanghai")
PRIOR_9 = ["2026-08-10", "2026-08-20", "2026-08-30", "2026-09-10", "2026-09-20", "2026-09-30", "2026-10-10",
           "2026-10-20", "2026-10-30"]


def noon(d: str) -> datetime:
    return datetime.combine(date.fromisoformat(d), time(12), Z)


def with_churn_yellow(tmp_path) -> Harness:
    """A customer with an open churn-yellow alert (visits fell off), the way test_alerts_flow builds one."""
    h = Harness(tmp_path, noon("2026-11-30"))
    h.feed(*(purchase("c_v", f"v{i}", noon(d)) for i, d in enumerate([*PRIOR_9, "2026-11-05"])))
    assert [(a["type"], a["status"]) for a in h.alerts()] == [("churn_yellow", "open")]
    h.take()
    return h


def test_a_scan_as_of_the_year_34_is_refused_and_the_alerts_api_keeps_working(tmp_path):
    h = with_churn_yellow(tmp_path)
    before = h.alerts()
    r = h.api.post("/v1/alerts/scan", params={"as_of": "0034-12-26T11:52:07Z", "full": "true"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "as_of_outside_window"
    assert err["details"] == {"earliest": "2026-11-29T04:00:00.000000Z", "latest": "2026-11-30T04:05:00.000000Z"}
    for as_of in ("9999-12-31T23:59:59Z", "2370-01-01T00:00:00Z", "2026-11-29T03:59:59+00:00",
                  "2026-11-30T04:05:01+00:00"):
        r = h.api.post("/v1/alerts/scan", params={"as_of": as_of, "full": "true"})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "as_of_outside_window"), as_of
    # Nothing changed, nothing was published, and every read and write of the alert still works.
    assert h.alerts() == before and h.take() == []
    [alert] = before
    assert h.api.get(f"/v1/alerts/{alert['alert_id']}").json() == alert
    ack = h.api.post(f"/v1/alerts/{alert['alert_id']}/ack", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"
    h.tick()  # the scheduler's first full pass under these rules: it leaves the alert as it is
    assert [(a["type"], a["status"]) for a in h.alerts()] == [("churn_yellow", "acknowledged")]


def test_a_scan_as_of_a_moment_in_the_window_changes_live_alerts(tmp_path):
    h = with_churn_yellow(tmp_path)
    # 5 December 00:00:01: 5 November has left the last 30 days, so yellow turns red. The service clock
    # is 20 hours later (the scheduler stalled), so that moment is in the window, and the scan catches up.
    h.now = datetime.combine(date(2026, 12, 5), time(20, 0, 1), Z)
    as_of = datetime.combine(date(2026, 12, 5), time(0, 0, 1), Z)
    assert h.scan(as_of)["customers"] == 1
    assert sorted((a["type"], a["status"], a["opened_at"]) for a in h.alerts()) == [
        ("churn_red", "open", "2026-12-04T16:00:01Z"), ("churn_yellow", "resolved", "2026-11-30T04:00:00Z")]
    [yellow] = h.alerts(type="churn_yellow")
    assert (yellow["resolved_at"], yellow["resolved_by"]) == ("2026-12-04T16:00:01Z", "system")
    # Five minutes of clock skew ahead is taken too (nothing is due then).
    assert h.scan(h.now + timedelta(minutes=5))["customers"] == 0


def test_an_alert_row_written_with_an_unpadded_year_still_reads(tmp_path):
    h = with_churn_yellow(tmp_path)
    [alert] = h.alerts()
    # What the year-34 scan left behind before timestamps were written fixed-width.
    with h.store.transaction():
        h.store.db.conn().execute("UPDATE alerts SET status = 'resolved', resolved_by = 'system', "
                                  "resolution = 'cleared', resolved_at = '34-12-26T11:52:07.000000Z'")
    [read] = h.alerts()
    assert (read["alert_id"], read["status"], read["resolved_at"]) == (alert["alert_id"], "resolved",
                                                                       "0034-12-26T11:52:07Z")
    assert h.api.get(f"/v1/alerts/{alert['alert_id']}").status_code == 200
    h.now = noon("2026-12-01")
    h.tick()
    assert h.api.get("/v1/alerts").status_code == 200


def test_list_offsets_and_churn_model_days_out_of_range_are_422(tmp_path):
    h = with_churn_yellow(tmp_path)
    for url in ("/v1/alerts", "/v1/alerts/churn-model/customers"):
        r = h.api.get(url, params={"offset": 2**63})
        assert (r.status_code, r.json()["error"]["details"][0]["loc"]) == (422, "query.offset"), url
    for as_of in ("0001-01-01", "1899-12-31", "2101-01-01", "9999-12-31"):
        for url in ("/v1/alerts/churn-model", "/v1/alerts/churn-model/customers",
                    "/v1/alerts/churn-model/customers/c_v"):
            r = h.api.get(url, params={"as_of": as_of})
            assert (r.status_code, r.json()["error"]["details"][0]["loc"]) == (422, "query.as_of"), (url, as_of)
    r = h.api.get("/v1/alerts/churn-model", params={"as_of": "2100-12-31"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "as_of_in_future")


def test_dead_letter_offsets_and_ids_beyond_a_64_bit_integer_are_422(tmp_path):
    h = Harness(tmp_path, noon("2026-11-30"))
    r = h.api.get("/v1/deadletters", params={"offset": 2**63})
    assert (r.status_code, r.json()["error"]["details"][0]["loc"]) == (422, "query.offset")
    r = h.api.post(f"/v1/deadletters/{2**63}/redrive")
    assert (r.status_code, r.json()["error"]["details"][0]["loc"]) == (422, "path.letter_id")
    assert h.api.post(f"/v1/deadletters/{2**63 - 1}/redrive").status_code == 404
