"""Issue 15, satisfaction through alerts' real consume path and HTTP API: NPS, CSAT and responses per store,
region and company with the trend, the loyal share through merges and unmerges, and the scope of each key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.alerts.app import create_app
from services.alerts.config import AlertsConfig
from services.alerts.store import AlertsStore
from services.alerts.store.mongo import MongoAlertsStore
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract.messages import CustomerMerged, CustomerOwnerChanged
from shared.settings import Settings
from tests.integration.alerts.harness import ADMIN, Harness, channel, purchase
from tests.integration.shared.backends import mongo_db

S01_KEY, EAST_KEY, WEST_KEY = "k-s01", "k-east", "k-west"
STORES = """store_id,name,region,timezone
S01,Jing'an,east,Asia/Shanghai
S02,Xuhui,east,Asia/Shanghai
S03,Chaoyang,west,Asia/Shanghai
"""
NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


class ScopedHarness(Harness):
    """The alerts harness with a stores registry and keys scoped to a store and to regions."""

    def __init__(self, tmp: Path, now: datetime, store: AlertsStore | None = None) -> None:
        self.now = now
        self.sent: list = []
        self._offset = 0
        (tmp / "stores.csv").write_text(STORES)
        self.store = store or SqliteAlertsStore(tmp / "alerts.db")
        settings = Settings(_env_file=None, stores_file=str(tmp / "stores.csv"),
                            api_keys=f"{ADMIN}:admin,{S01_KEY}:operator@store=S01,{EAST_KEY}:reader@region=east,"
                                     f"{WEST_KEY}:reader@region=west")
        self.service = create_app(settings, store=self.store, publish=self.sent.extend, clock=lambda: self.now,
                                  config=AlertsConfig(_env_file=None))
        self.api = TestClient(self.service.api, headers={"Authorization": f"Bearer {ADMIN}"})

    def report(self, key: str = ADMIN, **params) -> dict:
        r = self.api.get("/v1/reports/satisfaction", params=params, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        return r.json()


def survey(customer: str, eid: str, when: datetime, score: int, store: str | None):
    data = {"score": score} if store is None else {"score": score, "store_id": store}
    return channel(customer, "crm.survey", eid, when, data, source="wechat/oa")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(params=["sqlite", "mongomock"])
def h(request, tmp_path) -> Iterator[ScopedHarness]:
    """The service on each store adapter (the report figures come from each adapter's aggregates)."""
    if request.param == "sqlite":
        yield ScopedHarness(tmp_path, NOW)
        return
    with mongo_db(request.param) as db:
        yield ScopedHarness(tmp_path, NOW, MongoAlertsStore(db))


def _figures(report: dict) -> tuple:
    return (report["responses"], report["promoters"], report["passives"], report["detractors"], report["nps"],
            report["csat"])


def test_nps_csat_and_responses_per_store_region_and_company_with_the_trend(h: ScopedHarness):
    # c_own is owned by S01: its survey naming no store counts there.
    h.feed(CustomerOwnerChanged(customer_id="c_own", store_id="S01", at=at("2026-11-01T00:00:00")))
    h.feed(survey("c1", "s1", at("2026-11-03T02:00:00"), 6, "S01"),
           survey("c2", "s2", at("2026-11-04T02:00:00"), 7, "S01"),
           # 00:30 on 1 November in Shanghai: November, though still October in UTC.
           survey("c3", "s3", at("2026-10-31T16:30:00"), 8, "S01"),
           survey("c4", "s4", at("2026-11-05T02:00:00"), 9, "S01"),
           survey("c5", "s5", at("2026-11-06T02:00:00"), 9, "S01"),
           survey("c6", "s6", at("2026-11-07T02:00:00"), 10, "S01"),
           survey("c_own", "s7", at("2026-11-08T02:00:00"), 3, None),
           # 00:30 on 1 December in Shanghai: December.
           survey("c7", "s8", at("2026-11-30T16:30:00"), 0, "S01"),
           survey("c8", "s9", at("2026-11-09T02:00:00"), 10, "S02"),
           survey("c9", "s10", at("2026-11-09T02:00:00"), 2, "S02"),
           survey("c10", "s11", at("2026-11-09T02:00:00"), 9, "S03"),
           survey("c_nobody", "s12", at("2026-11-09T02:00:00"), 5, None))  # no store, no owner: company only
    # The same survey again, in a later batch and within one: counted once.
    h.feed(survey("c1", "s1", at("2026-11-03T02:00:00"), 6, "S01"), survey("c2", "s2", at("2026-11-04T02:00:00"), 7,
                                                                            "S01"))
    # A late survey of October arrives after November's: it lands in October.
    h.feed(survey("c11", "s13", at("2026-10-20T02:00:00"), 10, "S01"))

    s01 = h.report(store_id="S01", month="2026-11")
    # S01 in November: scores 6 7 8 9 9 10 3 -> promoters 3 (9, 9, 10), passives 2 (7, 8), detractors 2 (6, 3).
    assert _figures(s01) == (7, 3, 2, 2, 14.29, 0.7143)  # 100 × (3 − 2) / 7 = 14.2857…; 5 / 7 = 0.714285…
    assert s01["store_id"] == "S01" and s01["region"] is None and s01["month"] == "2026-11"
    assert [(t["month"], t["responses"], t["nps"], t["csat"]) for t in s01["trend"]] == [
        ("2026-06", 0, None, None), ("2026-07", 0, None, None), ("2026-08", 0, None, None),
        ("2026-09", 0, None, None), ("2026-10", 1, 100.0, 1.0), ("2026-11", 7, 14.29, 0.7143)]
    december = h.report(store_id="S01", month="2026-12")
    assert _figures(december) == (1, 0, 0, 1, -100.0, 0.0)
    assert [t["month"] for t in december["trend"]] == ["2026-07", "2026-08", "2026-09", "2026-10", "2026-11",
                                                        "2026-12"]

    east = h.report(region="east", month="2026-11")
    # S01 and S02: 9 responses, promoters 3 + 1, passives 2, detractors 2 + 1.
    assert _figures(east) == (9, 4, 2, 3, 11.11, 0.6667)  # 100 / 9 = 11.11…; 6 / 9
    assert east["region"] == "east" and east["store_id"] is None
    assert h.report(EAST_KEY, month="2026-11") == east  # a region key without parameters: its region

    company = h.report(month="2026-11")
    # Every store and the survey no store is named for: 11 responses, promoters 5, passives 2, detractors 4.
    assert _figures(company) == (11, 5, 2, 4, 9.09, 0.6364)  # 100 / 11 = 9.0909…; 7 / 11 = 0.63636…
    assert company["store_id"] is None and company["region"] is None

    assert h.report(S01_KEY, month="2026-11") == s01  # a store key without parameters: its store
    assert _figures(h.report(WEST_KEY, month="2026-11")) == (1, 1, 0, 0, 100.0, 1.0)


def test_a_key_sees_only_its_own_stores_and_region(h: ScopedHarness):
    def status(key: str, **params) -> tuple[int, str | None]:
        r = h.api.get("/v1/reports/satisfaction", params={"month": "2026-11", **params},
                      headers={"Authorization": f"Bearer {key}"})
        return r.status_code, r.json().get("error", {}).get("code") if r.status_code != 200 else None

    assert status(S01_KEY, store_id="S01") == (200, None)
    assert status(S01_KEY, store_id="S02") == (403, "forbidden_scope")
    assert status(S01_KEY, region="east") == (403, "forbidden_scope")
    assert status(EAST_KEY, store_id="S02") == (200, None)
    assert status(EAST_KEY, store_id="S03") == (403, "forbidden_scope")
    assert status(EAST_KEY, region="west") == (403, "forbidden_scope")
    assert status(WEST_KEY, region="west") == (200, None)
    assert status(ADMIN, region="west") == (200, None)


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "2026-11-01", "november", "2026-11\n",
                                   "\u0662\u0660\u0662\u0666-11"])
@pytest.mark.parametrize("route", ["satisfaction", "churn-reasons"])
def test_a_bad_month_is_422_naming_the_parameter(h: ScopedHarness, month: str, route: str):
    r = h.api.get(f"/v1/reports/{route}", params={"month": month})
    assert r.status_code == 422
    # The same error as the other reports' (README: details.parameter).
    assert r.json()["error"] == {"code": "invalid_month", "message": "month must be YYYY-MM",
                                 "details": {"parameter": "month"}}


def test_the_loyal_share_counts_distinct_days_per_customer_and_follows_merges_and_unmerges(h: ScopedHarness):
    h.feed(purchase("c_a", "p1", at("2026-11-02T02:00:00"), store="S01"),
           purchase("c_a", "p2", at("2026-11-02T05:00:00"), store="S01"),  # the same day: one day
           purchase("c_b", "p3", at("2026-06-10T02:00:00"), store="S01"),
           purchase("c_b", "p4", at("2026-11-05T02:00:00"), store="S01"),  # two days in the window: loyal
           purchase("c_c", "p5", at("2025-11-20T02:00:00"), store="S01"),  # before the 12 months
           purchase("c_c", "p6", at("2026-11-07T02:00:00"), store="S01"),
           purchase("c_d", "p7", at("2026-09-01T02:00:00"), store="S01"),
           purchase("c_e", "p8", at("2026-10-01T02:00:00"), store="S01"),
           purchase("c_f", "p9", at("2026-11-20T02:00:00"), store="S01"),
           purchase("c_h", "p10", at("2026-11-10T02:00:00"), store="S01"),
           purchase("c_i", "p11", at("2026-11-10T06:00:00"), store="S01"),
           purchase("c_g", "p12", at("2026-11-10T02:00:00"), store="S02"),
           purchase("c_g", "p13", at("2026-11-11T02:00:00"), store="S02"))
    h.feed(purchase("c_f", "p14", at("2026-10-15T02:00:00"), store="S01"))  # late: October, still in the window
    h.feed(purchase("c_f", "p14", at("2026-10-15T02:00:00"), store="S01"))  # again: nothing more

    def loyal(**params) -> tuple[int, int, float | None]:
        r = h.report(month="2026-11", **params)
        assert r["loyal_window_months"] == 12
        return r["customers"], r["loyal_customers"], r["loyal_share"]

    # S01: c_a c_b c_c c_d c_e c_f c_h c_i; loyal c_b (June and November) and c_f (October and November).
    assert loyal(store_id="S01") == (8, 2, 0.25)
    assert loyal(region="east") == (9, 3, 0.3333)  # and c_g, twice at S02
    assert loyal(store_id="S03") == (0, 0, None)
    h.feed(CustomerMerged(kind="customer.merged", merge_id="m1", survivor_id="c_d", merged_id="c_e",
                          records=["c_d", "c_e"], at=at("2026-12-01T00:00:00")),
           CustomerMerged(kind="customer.merged", merge_id="m2", survivor_id="c_h", merged_id="c_i",
                          records=["c_h", "c_i"], at=at("2026-12-01T00:00:01")))
    # c_d + c_e: September and October, loyal; c_h + c_i bought on one day: one customer, one day.
    assert loyal(store_id="S01") == (6, 3, 0.5)
    h.feed(CustomerMerged(kind="customer.unmerged", merge_id="m1", survivor_id="c_d", merged_id="c_e",
                          records=["c_e"], at=at("2026-12-01T00:00:02")))
    assert loyal(store_id="S01") == (7, 2, 0.2857)  # 2 / 7 = 0.285714…
