"""Issue 15, structured reasons on resolving churn and complaint alerts, through alerts' HTTP API: what is
refused (422 naming the field), the report of reasons per store, the export, and the erasure of the text."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.alerts.store.mongo import MongoAlertsStore
from shared.contract.messages import CustomerErased
from tests.integration.alerts.harness import ADMIN, complaint, purchase
from tests.integration.alerts.reports.test_satisfaction import S01_KEY, ScopedHarness, survey
from tests.integration.shared.backends import mongo_db

Z = ZoneInfo("Asia/Shanghai")
PHONE = "13800138000"
TEXT = f"moved to Hangzhou, call {PHONE}"


def noon(d: str) -> datetime:
    return datetime.combine(date.fromisoformat(d), time(12), Z)


@pytest.fixture(params=["sqlite", "mongomock"])
def h(request, tmp_path) -> Iterator[ScopedHarness]:
    with ExitStack() as stack:
        store = None if request.param == "sqlite" else MongoAlertsStore(stack.enter_context(mongo_db(request.param)))
        yield _history(ScopedHarness(tmp_path, datetime(2026, 11, 24, tzinfo=Z), store))


def _history(h: ScopedHarness) -> ScopedHarness:
    # Midnight on 24 November: c_r's six visits 10 Aug - 25 Oct, none for 30 days, raise churn_red.
    h.feed(*[purchase("c_r", f"p-{d}", noon(d), store="S01") for d in (
        "2026-08-10", "2026-08-25", "2026-09-10", "2026-09-25", "2026-10-10", "2026-10-25")])
    h.feed(complaint("c_x", "x1", noon("2026-11-23"), store="S01"),
           complaint("c_y", "y1", noon("2026-11-23"), store="S02"),
           survey("c_s", "s1", noon("2026-11-23"), 2, "S01"))
    h.scan()
    return h


def _alert(h: ScopedHarness, customer: str, type_: str) -> str:
    [found] = [a["alert_id"] for a in h.alerts(customer_id=customer, type=type_)]
    return found


def _resolve(h: ScopedHarness, alert_id: str, **body):
    return h.api.post(f"/v1/alerts/{alert_id}/resolve", json={"note": "called the customer", **body})


def _error(r) -> tuple[int, str, list]:
    e = r.json()["error"]
    return r.status_code, e["code"], [d["loc"] for d in e.get("details", [])]


def test_a_reason_that_cannot_be_taken_is_422_naming_the_field_and_resolves_nothing(h: ScopedHarness):
    x, s = _alert(h, "c_x", "complaint"), _alert(h, "c_s", "survey_low")
    assert _error(_resolve(h, x, reason="too_expensive")) == (422, "invalid_request", ["body.reason"])
    assert _error(_resolve(h, x, reason="other")) == (422, "reason_text_required", ["body.reason_text"])
    assert _error(_resolve(h, x, reason="other", reason_text="  ")) == (422, "reason_text_required",
                                                                         ["body.reason_text"])
    assert _error(_resolve(h, s, reason="price_competition")) == (422, "reason_not_applicable", ["body.reason"])
    assert _error(_resolve(h, x, reason_text="alone")) == (422, "reason_required", ["body.reason"])
    assert [a["status"] for a in h.alerts(status="resolved")] == []
    assert _resolve(h, s).status_code == 200  # a survey alert resolves without a reason, and is not counted
    assert h.api.get("/v1/reports/churn-reasons", params={"month": "2026-11"}).json()["total"] == 0


def test_reasons_are_counted_per_store_and_the_text_is_personal(h: ScopedHarness, caplog):
    caplog.set_level(logging.DEBUG)
    r, x, y = _alert(h, "c_r", "churn_red"), _alert(h, "c_x", "complaint"), _alert(h, "c_y", "complaint")
    assert _resolve(h, r, reason="price_competition").json()["status"] == "resolved"
    assert _resolve(h, x, reason="other", reason_text=TEXT).status_code == 200
    assert _resolve(h, y).status_code == 200  # no reason given: unspecified
    assert _error(_resolve(h, y, reason="novelty_or_habit")) == (409, "alert_resolved", [])

    def report(key: str = ADMIN, **params) -> dict:
        got = h.api.get("/v1/reports/churn-reasons", params={"month": "2026-11", **params},
                        headers={"Authorization": f"Bearer {key}"})
        assert got.status_code == 200, got.text
        return got.json()

    company = report()
    assert (company["total"], company["items"]) == (3, [
        {"store_id": "S01", "reason": "other", "alerts": 1},
        {"store_id": "S01", "reason": "price_competition", "alerts": 1},
        {"store_id": "S02", "reason": "unspecified", "alerts": 1}])
    assert report(S01_KEY) == {**report(store_id="S01"), "store_id": "S01"}
    assert report(S01_KEY)["total"] == 2
    assert report(region="east") == {**company, "region": "east"}
    assert report(month="2026-10")["total"] == 0
    assert h.api.get("/v1/reports/churn-reasons", params={"month": "2026-11", "store_id": "S02"},
                     headers={"Authorization": f"Bearer {S01_KEY}"}).status_code == 403
    csv = h.api.get("/v1/reports/churn-reasons", params={"month": "2026-11"}, headers={"Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text == "store_id,reason,alerts\nS01,other,1\nS01,price_competition,1\nS02,unspecified,1\n"

    # The text is in the customer's export, and nowhere in what alerts published (audit entries included).
    exported = h.api.get("/v1/customers/c_x/export").json()["resolution_reasons"]
    assert [(e["alert_id"], e["type"], e["store_id"], e["reason"], e["reason_text"]) for e in exported] == [
        (x, "complaint", "S01", "other", TEXT)]
    assert PHONE not in repr([m.value for m in h.sent])
    assert "Hangzhou" not in caplog.text and PHONE not in caplog.text

    # Erased with the customer: the text goes, the count stays.
    h.feed(CustomerErased(erasure_id="er1", customer_id="c_x", records=["c_x"], at=h.advance(minutes=1)))
    assert h.store.reasons_of(["c_x"]) == []
    if isinstance(h.store, MongoAlertsStore):
        doc = h.store.mdb["sat_reasons"].find_one({"_id": x})
        held = (doc["reason_text"], doc["record_id"])
    else:
        held = h.store.db.conn().execute("SELECT reason_text, record_id FROM sat_reasons WHERE alert_id = ?",
                                         (x,)).fetchone()
    assert held == (None, None)
    assert report() == company


def test_the_satisfaction_report_answers_csv(h: ScopedHarness):
    r = h.api.get("/v1/reports/satisfaction", params={"month": "2026-11", "store_id": "S01", "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines() == ["month,responses,promoters,passives,detractors,nps,csat",
                                   "2026-06,0,0,0,0,,", "2026-07,0,0,0,0,,", "2026-08,0,0,0,0,,",
                                   "2026-09,0,0,0,0,,", "2026-10,0,0,0,0,,", "2026-11,1,0,0,1,-100.0,0.0"]


@pytest.mark.parametrize("path", ["/v1/reports/satisfaction", "/v1/reports/churn-reasons"])
def test_a_csv_for_a_region_named_in_chinese_is_a_file_not_a_500(h: ScopedHarness, path: str):
    # The file name goes into a latin-1 header: a region or store named in Chinese (or with a quote) was a 500.
    r = h.api.get(path, params={"month": "2026-11", "region": '华东"区', "format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == f'attachment; filename="{path.rsplit("/", 1)[1]}-____-2026-11.csv"'
