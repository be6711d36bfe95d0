"""Issue 15, store KPIs: a hand-built history sent through alerts' consume path, every figure computed by hand,
with a late event, a refund before its purchase, non-members' sales, and a merge and unmerge changing a past
month."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from shared.contract.messages import CustomerMerged, StoreSaleRecorded
from tests.integration.alerts.harness import Harness, channel, purchase

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SH)


def sale(eid: str, when: datetime, amount: str, store: str = "SH-001") -> StoreSaleRecorded:
    """A non-member's sale as identity hands it on (``data.identity`` is ``{}``)."""
    return StoreSaleRecorded(event={"specversion": "1.0", "id": eid, "source": f"pos/{store}", "type": "crm.purchase",
                                    "time": when.isoformat(), "data": {"identity": {}, "order_id": eid,
                                                                       "amount": amount, "store_id": store}},
                             resolved_at=when)


def sale_refund(eid: str, order: str, when: datetime, amount: str) -> StoreSaleRecorded:
    return StoreSaleRecorded(event={"specversion": "1.0", "id": eid, "source": "pos/SH-001", "type": "crm.refund",
                                    "time": when.isoformat(), "data": {"identity": {}, "order_id": order,
                                                                       "amount": amount}}, resolved_at=when)


def refund(customer: str, eid: str, order: str, when: datetime, amount: str):
    return channel(customer, "crm.refund", eid, when, {"order_id": order, "amount": amount})


def merged(kind: str, survivor: str, merged_id: str, records: list[str], when: datetime) -> CustomerMerged:
    return CustomerMerged(kind=kind, merge_id=f"m-{survivor}-{merged_id}", survivor_id=survivor, merged_id=merged_id,
                          records=records, at=when)


def kpi(h: Harness, month: str, path: str = "/v1/reports/stores/SH-001", **params) -> dict:
    r = h.api.get(path, params={"month": month, **params})
    assert r.status_code == 200, r.text
    return r.json()


def history(h: Harness) -> None:
    """Last year's November, October and November 2026 at SH-001 (and one sale at SH-002)."""
    h.feed(purchase("c_x", "x1", at("2025-11-15T12:00"), amount="500.00"))
    # October: a, b and the record e2 (not yet known to be b) are new; a non-member buys once.
    h.feed(purchase("c_a", "a1", at("2026-10-05T12:00"), amount="100.00"),
           purchase("c_b", "b1", at("2026-10-10T12:00"), amount="200.00"),
           purchase("c_e2", "e1", at("2026-10-20T12:00"), amount="70.00"),
           sale("n1", at("2026-10-12T12:00"), "50.00"))
    # A refund of c's order o-c1 arrives before the purchase it refunds.
    h.feed(refund("c_c", "rc1", "c1", at("2026-11-04T12:00"), "50.00"))
    h.feed(purchase("c_a", "a2", at("2026-11-02T11:00"), amount="300.00"),
           purchase("c_a", "a3", at("2026-11-02T19:00"), amount="100.00"),  # the same day: one purchase day
           purchase("c_a", "a4", at("2026-11-20T12:00"), amount="100.00"),
           purchase("c_a", "a5", at("2026-11-07T12:00"), store="SH-002", amount="999.00"),
           purchase("c_c", "c1", at("2026-11-03T12:00"), amount="150.00"),
           purchase("c_c", "c2", at("2026-11-25T12:00"), amount="50.00"),
           purchase("c_e2", "e2", at("2026-11-04T12:00"), amount="60.00"),
           sale("n2", at("2026-11-05T12:00"), "40.00"),
           sale("n3", at("2026-11-06T12:00"), "60.00"),
           sale_refund("nr3", "n3", at("2026-11-06T13:00"), "10.00"),
           purchase("c_a", "a2", at("2026-11-02T11:00"), amount="300.00"))  # the same event twice: once
    h.feed(purchase("c_z", "z1", at("2026-12-01T10:00"), amount="20.00"))  # December
    # A till offline on the last evening of November uploads a day late: it lands in November.
    h.feed(purchase("c_d", "d1", at("2026-11-30T23:30"), amount="80.00"))


# November at SH-001 before any merge, by hand:
# member orders a2 a3 a4 c1 c2 e2 d1 = 7, gross 300+100+100+150+50+60+80 = 840, c's refund 50: member sales 790;
# non-member orders n2 n3 = 2, 40+60 = 100 less the refund 10: 90. Sales 880 over 9 orders.
# Customers a (days 2nd, 20th), c (3rd, 25th), d (30th), e2 (4th): 4, purchase days 6, repeat a and c.
# New (first purchase in November): c and d; c bought again 22 days after the first (<= 90), d did not.
# October's customers a, b, e2: a and e2 came back.
NOVEMBER = {
    "month": "2026-11", "sales": "880.00", "gross_sales": "940.00", "refunds": "60.00", "orders": 9,
    "average_ticket": "97.78", "member_sales": "790.00", "member_orders": 7, "member_average_ticket": "112.86",
    "non_member_sales": "90.00", "non_member_orders": 2, "non_member_average_ticket": "45.00",
    "member_capture_rate": 0.8977, "customers": 4, "new_customers": 2, "existing_customers": 2,
    "new_existing_ratio": 1.0, "new_customer_retention": 0.5, "existing_customer_retention": 0.6667,
    "repeat_purchase_rate": 0.5, "purchase_frequency": 1.5, "managed_customers": 0,
    "tenure": {"new": 2, "1_2_months": 2, "3_5_months": 0, "6_11_months": 0, "12_23_months": 0,
               "24_months_plus": 0},
}
# October: a 100, b 200, e2 70, non-member 50: 420 over 4 orders; three new customers, none bought twice in
# October, but a (28 days later) and e2 (15 days later) bought again in November: new retention 2/3.
OCTOBER = {
    "month": "2026-10", "sales": "420.00", "gross_sales": "420.00", "refunds": "0.00", "orders": 4,
    "average_ticket": "105.00", "member_sales": "370.00", "member_orders": 3, "member_average_ticket": "123.33",
    "non_member_sales": "50.00", "non_member_orders": 1, "non_member_average_ticket": "50.00",
    "member_capture_rate": 0.881, "customers": 3, "new_customers": 3, "existing_customers": 0,
    "new_existing_ratio": None, "new_customer_retention": 0.6667, "existing_customer_retention": None,
    "repeat_purchase_rate": 0.0, "purchase_frequency": 1.0, "managed_customers": 0,
    "tenure": {"new": 3, "1_2_months": 0, "3_5_months": 0, "6_11_months": 0, "12_23_months": 0,
               "24_months_plus": 0},
}
# November 2025: x alone, 500.00, new, never back.
LAST_YEAR = {
    "month": "2025-11", "sales": "500.00", "gross_sales": "500.00", "refunds": "0.00", "orders": 1,
    "average_ticket": "500.00", "member_sales": "500.00", "member_orders": 1, "member_average_ticket": "500.00",
    "non_member_sales": "0.00", "non_member_orders": 0, "non_member_average_ticket": None,
    "member_capture_rate": 1.0, "customers": 1, "new_customers": 1, "existing_customers": 0,
    "new_existing_ratio": None, "new_customer_retention": 0.0, "existing_customer_retention": None,
    "repeat_purchase_rate": 0.0, "purchase_frequency": 1.0, "managed_customers": 0,
    "tenure": {"new": 1, "1_2_months": 0, "3_5_months": 0, "6_11_months": 0, "12_23_months": 0,
               "24_months_plus": 0},
}


class MongoHarness(Harness):
    """The harness on a mongomock alerts store: the same figures from the other adapter."""

    def __init__(self, tmp, now) -> None:
        import mongomock
        from fastapi.testclient import TestClient

        from services.alerts.app import create_app
        from services.alerts.config import AlertsConfig
        from services.alerts.store.mongo import MongoAlertsStore
        from shared.settings import Settings
        from shared.storage.base import MongoDb

        self.now, self.sent, self._offset = now, [], 0
        self.store = MongoAlertsStore(MongoDb(mongomock.MongoClient(tz_aware=True)[f"kpi_{tmp.name[-12:]}"]))
        settings = Settings(_env_file=None, api_keys="k-admin:admin")
        self.service = create_app(settings, store=self.store, publish=self.sent.extend, clock=lambda: self.now,
                                  config=AlertsConfig(_env_file=None))
        self.api = TestClient(self.service.api, headers={"Authorization": "Bearer k-admin"})


BOTH = pytest.mark.parametrize("make", [Harness, MongoHarness], ids=["sqlite", "mongomock"])


@BOTH
def test_a_store_month_with_comparisons_late_events_refunds_and_non_members(tmp_path, make):
    h = make(tmp_path, NOW)
    history(h)
    got = kpi(h, "2026-11")
    assert {k: got[k] for k in NOVEMBER} == NOVEMBER
    assert got["previous_month"] == OCTOBER
    assert got["same_month_last_year"] == LAST_YEAR
    assert (got["level"], got["store_id"], got["retention_days"]) == ("store", "SH-001", 90)
    change = got["change"]["previous_month"]
    assert (change["sales"], change["orders"], change["customers"], change["average_ticket"]) == (
        "460.00", 5, 1, "-7.22")  # 880 - 420; 9 - 4; 4 - 3; 880/9 - 105 = -7.2222...
    assert change["member_capture_rate"] == 0.0168  # 790/880 - 370/420 = 0.897727... - 0.880952... = 0.016775...
    assert change["existing_customer_retention"] is None  # October has no previous customers
    last = got["change"]["same_month_last_year"]
    assert (last["sales"], last["new_customers"], last["repeat_purchase_rate"]) == ("380.00", 1, 0.5)


@BOTH
def test_a_merge_joins_and_an_unmerge_splits_past_months(tmp_path, make):
    h = make(tmp_path, NOW)
    history(h)
    h.feed(merged("customer.merged", "c_b", "c_e2", ["c_b", "c_e2"], NOW))
    october, november = kpi(h, "2026-10"), kpi(h, "2026-11")
    # b and e2 are one customer: October has 2 customers, b with two purchase days (10th and 20th).
    assert (october["customers"], october["new_customers"], october["repeat_purchase_rate"],
            october["purchase_frequency"]) == (2, 2, 0.5, 1.5)
    # November: b (through e2) came back, so both of October's customers did; still 4 customers.
    assert (november["customers"], november["existing_customer_retention"], november["new_customers"]) == (4, 1.0, 2)
    assert november["sales"] == "880.00"  # money does not move with the mapping
    h.feed(merged("customer.unmerged", "c_b", "c_e2", ["c_e2"], h.advance(minutes=1)))
    assert {k: kpi(h, "2026-10")[k] for k in OCTOBER} == OCTOBER
    assert {k: kpi(h, "2026-11")[k] for k in NOVEMBER} == NOVEMBER


def test_company_and_csv(tmp_path):
    h = Harness(tmp_path, NOW)
    history(h)
    got = kpi(h, "2026-11", "/v1/reports/company")
    # SH-002's 999.00 joins: 1879.00 over 10 orders; a is one customer across both stores.
    assert (got["level"], got["sales"], got["orders"], got["customers"], got["average_ticket"]) == (
        "company", "1879.00", 10, 4, "187.90")
    r = h.api.get("/v1/reports/stores/SH-001", params={"month": "2026-11"}, headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0] == "figure,2026-11,2026-10,2025-11,change_previous_month,change_same_month_last_year"
    assert "sales,880.00,420.00,500.00,460.00,380.00" in lines
    assert "new_existing_ratio,1.0,,,," in lines
    assert "tenure_new,2,3,1,-1,1" in lines
    assert h.api.get("/v1/reports/company", params={"month": "2026-11", "format": "csv"}).text.splitlines()[0] == \
        lines[0]


def test_a_bad_month_is_a_422_naming_the_parameter(tmp_path):
    h = Harness(tmp_path, NOW)
    for bad in ("2026-13", "2026-1", "november"):
        r = h.api.get("/v1/reports/stores/SH-001", params={"month": bad})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_month" and r.json()["error"]["details"] == {"parameter": "month"}


class ScopedHarness(Harness):
    """The harness with a stores registry (SH-001 and SH-002 in east, BJ-001 in north) and scoped keys."""

    def __init__(self, tmp, now) -> None:
        from fastapi.testclient import TestClient

        from services.alerts.app import create_app
        from services.alerts.config import AlertsConfig
        from services.alerts.store.sqlite import SqliteAlertsStore
        from shared.settings import Settings

        (tmp / "stores.csv").write_text("store_id,name,region,timezone\nSH-001,One,east,Asia/Shanghai\n"
                                        "SH-002,Two,east,Asia/Shanghai\nBJ-001,Three,north,Asia/Shanghai\n")
        self.now, self.sent, self._offset = now, [], 0
        self.store = SqliteAlertsStore(tmp / "alerts.db")
        settings = Settings(_env_file=None, stores_file=str(tmp / "stores.csv"),
                            api_keys="k-admin:admin,k-sh1:reader@store=SH-001,k-east:reader@region=east,"
                                     "k-north:reader@region=north")
        self.service = create_app(settings, store=self.store, publish=self.sent.extend, clock=lambda: self.now,
                                  config=AlertsConfig(_env_file=None))
        self.api = TestClient(self.service.api, headers={"Authorization": "Bearer k-admin"})


def test_each_key_gets_the_reports_of_its_own_scope(tmp_path):
    h = ScopedHarness(tmp_path, NOW)
    history(h)
    h.feed(purchase("c_q", "q1", at("2026-11-09T12:00"), store="BJ-001", amount="7.00"))

    def status(key: str, path: str) -> tuple[int, str | None]:
        r = h.api.get(path, params={"month": "2026-11"}, headers={"Authorization": f"Bearer {key}"})
        return r.status_code, r.json().get("error", {}).get("code") if r.status_code != 200 else r.json()["sales"]

    assert status("k-sh1", "/v1/reports/stores/SH-001") == (200, "880.00")
    assert status("k-sh1", "/v1/reports/stores/SH-002") == (403, "forbidden_scope")
    assert status("k-sh1", "/v1/reports/regions/east") == (403, "forbidden_scope")
    assert status("k-sh1", "/v1/reports/company") == (403, "forbidden_scope")
    assert status("k-east", "/v1/reports/stores/SH-002") == (200, "999.00")
    assert status("k-east", "/v1/reports/stores/BJ-001") == (403, "forbidden_scope")
    assert status("k-east", "/v1/reports/regions/east") == (200, "1879.00")  # SH-001 and SH-002
    assert status("k-east", "/v1/reports/regions/north") == (403, "forbidden_scope")
    assert status("k-north", "/v1/reports/regions/north") == (200, "7.00")
    assert status("k-admin", "/v1/reports/company") == (200, "1886.00")
    assert status("k-admin", "/v1/reports/regions/west") == (404, "region_not_found")


@BOTH
def test_customers_managed_by_an_account_manager(tmp_path, make):
    h = make(tmp_path, NOW)
    history(h)
    h.feed(channel("c_a", "crm.profile", "pf1", at("2026-11-21T09:00"), {"attributes": {"account_manager": "am-7"}}),
           channel("c_b", "crm.profile", "pf2", at("2026-11-21T09:00"), {"attributes": {"account_manager": "am-8"}}),
           channel("c_x", "crm.profile", "pf3", at("2026-11-21T09:00"), {"attributes": {"account_manager": "am-9"}}))
    # Of November's customers a, c, d, e2 only a has a manager (b and x did not buy at SH-001 in November).
    assert kpi(h, "2026-11")["managed_customers"] == 1
    h.feed(merged("customer.merged", "c_b", "c_e2", ["c_b", "c_e2"], NOW))
    assert kpi(h, "2026-11")["managed_customers"] == 2  # e2 is b now, and b has a manager
    # The manager is taken off a (an empty value, newer): no longer managed.
    h.feed(channel("c_a", "crm.profile", "pf4", at("2026-11-22T09:00"), {"attributes": {"account_manager": ""}}))
    assert kpi(h, "2026-11")["managed_customers"] == 1


def test_a_purchase_counts_in_the_month_of_its_local_day_at_the_store(tmp_path):
    h = Harness(tmp_path, NOW)
    # 17:00 UTC on 31 October is 01:00 on 1 November in Shanghai, the store's timezone.
    h.feed(purchase("c_a", "a1", datetime(2026, 10, 31, 17, 0, tzinfo=UTC), amount="10.00"),
           sale("n1", datetime(2026, 10, 31, 15, 59, tzinfo=UTC), "5.00"))  # 23:59 on 31 October
    november, october = kpi(h, "2026-11"), kpi(h, "2026-10")
    assert (november["orders"], november["sales"], november["new_customers"]) == (1, "10.00", 1)
    assert (october["orders"], october["sales"], october["customers"]) == (1, "5.00", 0)


@pytest.mark.parametrize("bad", ["2026-11\n", "\uff12\uff10\uff12\uff16-11", "2026-\u0661\u0661", "0000-01"])
def test_a_month_with_a_trailing_newline_or_non_ascii_digits_is_a_422_not_an_empty_report(tmp_path, bad):
    # "2026-11\n" passed the check (``$`` matches before a final newline) and answered November's report with
    # every figure 0 under the month "2026-11\n"; full-width or Arabic-Indic digits passed ``\d`` alike; year 0
    # compared itself with the months "-001-12" and "-001-01".
    h = Harness(tmp_path, NOW)
    h.feed(purchase("c_a", "a1", at("2026-11-02T12:00"), amount="10.00"))
    for path in ("/v1/reports/stores/SH-001", "/v1/reports/company"):
        r = h.api.get(path, params={"month": bad})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_month" and r.json()["error"]["details"] == {"parameter": "month"}
    assert kpi(h, "2026-11")["sales"] == "10.00"
