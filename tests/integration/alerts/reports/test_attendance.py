"""The attendance sheet (issue 15) through alerts' real consume path and its HTTP route: visits by sitting
(meal periods from the stores registry), spend net of refunds, covers, spend per head, tier; late and
out-of-order events, a merge and an unmerge changing a past month, and the caller's scope."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from services.alerts.app import create_app
from services.alerts.config import AlertsConfig
from services.alerts.messages import consume
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract import topics
from shared.contract.messages import (
    CustomerEventResolved,
    CustomerMerged,
    CustomerOwnerChanged,
    StoreSaleRecorded,
    ViewPartUpdated,
    encode,
)
from shared.settings import Settings
from shared.streaming.batch import Incoming
from tests.integration.alerts.harness import channel

Z = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 5, 9, tzinfo=Z)
ADMIN, NORTH, BJ, SH = "k-admin", "k-north", "k-bj", "k-sh"
STORES = [
    {"store_id": "BJ-01", "name": "Beijing 1", "region": "north", "timezone": "Asia/Shanghai",
     "meal_periods": "lunch=10:30-15:00;dinner=16:30-22:30"},
    {"store_id": "SH-02", "name": "Shanghai 2", "region": "east", "timezone": "Asia/Shanghai"},
]


class Platform:
    """Alerts in-process on its SQLite store with a stores registry and scoped keys; messages fed as its agent
    feeds them (one batch per ``feed``)."""

    def __init__(self, tmp_path) -> None:
        stores = tmp_path / "stores.json"
        stores.write_text(json.dumps(STORES))
        settings = Settings(_env_file=None, stores_file=str(stores), api_keys=(
            f"{ADMIN}:admin,{NORTH}:reader@region=north,{BJ}:reader@store=BJ-01,{SH}:reader@store=SH-02"))
        self.store = SqliteAlertsStore(tmp_path / "alerts.db")
        self.service = create_app(settings, store=self.store, publish=lambda _: None, clock=lambda: NOW,
                                  config=AlertsConfig(_env_file=None, scan_enabled=False))
        self.http = TestClient(self.service.api)
        self.offset = 0

    def feed(self, *messages) -> None:
        batch = []
        for m in messages:
            topic = {CustomerMerged: topics.CUSTOMER_MERGED, CustomerEventResolved: topics.CUSTOMER_EVENTS,
                     StoreSaleRecorded: topics.CUSTOMER_EVENTS,
                     CustomerOwnerChanged: topics.CUSTOMER_OWNERS}.get(type(m), topics.LOYALTY_EVENTS)
            self.offset += 1
            batch.append(Incoming(encode(m), topic, 0, self.offset))
        outcome = consume(batch, deps=self.service.deps)
        assert outcome.dead_lettered == 0

    def get(self, key: str = ADMIN, **params):
        return self.http.get("/v1/reports/attendance", params=params, headers={"Authorization": f"Bearer {key}"})

    def sheet(self, store_id: str, month: str, key: str = ADMIN) -> dict[str, dict]:
        r = self.get(key, store_id=store_id, month=month)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["customers"] == len(body["items"])
        return {x["customer_id"]: {k: v for k, v in x.items() if k != "customer_id"} for x in body["items"]}


def at(day: str, hm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hm}:00").replace(tzinfo=Z)


def buy(customer: str, eid: str, when: datetime, amount: str, *, covers: int | None = None, store: str = "BJ-01",
        record: str | None = None, order: str | None = None) -> CustomerEventResolved:
    data = {"order_id": order or eid, "amount": amount, "store_id": store}
    if covers is not None:
        data["covers"] = covers
    return channel(customer, "crm.purchase", eid, when, data, record=record)


def refund(customer: str, eid: str, when: datetime, order: str, amount: str) -> CustomerEventResolved:
    return channel(customer, "crm.refund", eid, when, {"order_id": order, "amount": amount, "store_id": "BJ-01"})


def tier(customer: str, value: str) -> ViewPartUpdated:
    return ViewPartUpdated(customer_id=customer, part="loyalty", value={"points_balance": 0, "tier": value},
                           version="2026-12-01T00:00:00.000000Z-000001")


def owner(customer: str, store: str) -> CustomerOwnerChanged:
    return CustomerOwnerChanged(customer_id=customer, store_id=store, at=NOW - timedelta(days=60))


def line(visits, orders, spend, covers, per_head, tier_=None) -> dict:
    return {"visits": visits, "orders": orders, "spend": spend, "covers": covers, "spend_per_head": per_head,
            "tier": tier_}


@pytest.fixture
def p(tmp_path) -> Platform:
    return Platform(tmp_path)


def test_the_domain_row_five_sittings_lunch_and_dinner_apart_net_of_a_refund_that_came_first(p):
    # The material's row: 5 visits, 4,820 CNY, 64 covers, tier A. The refund of the 20th's lunch arrives a
    # batch before its purchase does.
    p.feed(owner("c_a", "BJ-01"), tier("c_a", "A"), refund("c_a", "r20", at("2026-11-20", "14:50"), "o20", "100.00"))
    p.feed(buy("c_a", "p2l", at("2026-11-02", "12:00"), "1000.00", covers=10),
           buy("c_a", "p2l2", at("2026-11-02", "13:30"), "200.00", covers=10),  # the same lunch: one visit
           buy("c_a", "p2d", at("2026-11-02", "18:00"), "900.00", covers=12),  # dinner the same day: another
           buy("c_a", "p10", at("2026-11-10", "15:30"), "720.00", covers=14),  # between the periods: its day
           buy("c_a", "p15", at("2026-11-15", "19:00"), "1100.00", covers=16),
           buy("c_a", "p20", at("2026-11-20", "12:15"), "1000.00", covers=12, order="o20"))
    spend = Decimal("1000.00") + Decimal("200.00") + Decimal("900.00") + Decimal("720.00") + Decimal("1100.00") \
        + Decimal("1000.00") - Decimal("100.00")
    covers = 10 + 12 + 14 + 16 + 12
    assert (spend, covers) == (Decimal("4820.00"), 64)
    per_head = (spend / covers).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)  # 75.3125
    assert per_head == Decimal("75.31")
    assert p.sheet("BJ-01", "2026-11") == {"c_a": line(5, 6, "4820.00", 64, "75.31", "A")}
    # The same events again (a redelivery) change nothing.
    p.feed(buy("c_a", "p15", at("2026-11-15", "19:00"), "1100.00", covers=16),
           refund("c_a", "r20", at("2026-11-20", "14:50"), "o20", "100.00"))
    assert p.sheet("BJ-01", "2026-11") == {"c_a": line(5, 6, "4820.00", 64, "75.31", "A")}
    # A refund after its purchase comes off too, in the purchase's month.
    p.feed(refund("c_a", "r15", at("2026-12-01", "10:00"), "p15", "200.00"))
    assert p.sheet("BJ-01", "2026-11")["c_a"] == line(5, 6, "4620.00", 64,
                                                      str((Decimal("4620") / 64).quantize(Decimal("0.01"))), "A")


def test_without_meal_periods_a_visit_is_a_distinct_day_and_covers_may_be_missing(p):
    p.feed(buy("c_e", "e1", at("2026-11-03", "12:00"), "80.00", store="SH-02", covers=2),
           buy("c_e", "e2", at("2026-11-03", "19:00"), "120.00", store="SH-02"),  # the same day: one visit
           buy("c_e", "e3", at("2026-11-04", "09:00"), "30.00", store="SH-02"),  # no covers given at all
           buy("c_e", "e4", at("2026-11-03", "20:00"), "55.00", store="BJ-01", covers=3))  # another store's
    # The 3rd: 200.00 over 2 covers; the 4th gave no covers, so it is left out of the per-head figure.
    assert p.sheet("SH-02", "2026-11") == {"c_e": line(2, 3, "230.00", 2, "100.00")}
    assert p.sheet("BJ-01", "2026-11") == {"c_e": line(1, 1, "55.00", 3, "18.33")}  # 18.333...
    p.feed(buy("c_x", "x1", at("2026-11-05", "12:00"), "45.00", store="SH-02"))
    assert p.sheet("SH-02", "2026-11")["c_x"] == line(1, 1, "45.00", None, None)


def test_a_late_purchase_lands_in_its_own_month(p):
    p.feed(buy("c_l", "l1", at("2026-11-01", "12:00"), "300.00", covers=3))
    # A day late: the dinner of 31 October, sent after November's purchase.
    p.feed(buy("c_l", "l0", at("2026-10-31", "21:00"), "400.00", covers=4))
    assert p.sheet("BJ-01", "2026-10") == {"c_l": line(1, 1, "400.00", 4, "100.00")}
    assert p.sheet("BJ-01", "2026-11") == {"c_l": line(1, 1, "300.00", 3, "100.00")}


def test_a_merge_joins_and_an_unmerge_splits_a_past_month(p):
    p.feed(owner("c_c", "BJ-01"), owner("c_d", "BJ-01"),
           buy("c_c", "c1", at("2026-10-05", "12:00"), "300.00", covers=3),
           buy("c_d", "d1", at("2026-10-05", "13:00"), "200.00", covers=4),  # the same lunch as c_c's
           buy("c_d", "d2", at("2026-10-06", "18:30"), "150.00"))
    apart = {"c_c": line(1, 1, "300.00", 3, "100.00"), "c_d": line(2, 2, "350.00", 4, "50.00")}
    assert p.sheet("BJ-01", "2026-10") == apart
    p.feed(CustomerMerged(kind="customer.merged", merge_id="m1", survivor_id="c_c", merged_id="c_d",
                          records=["c_d"], at=NOW))
    # One person: the shared lunch is one visit (the larger party, 4), the dinner another; 500.00 over 4 heads.
    assert p.sheet("BJ-01", "2026-10") == {"c_c": line(2, 3, "650.00", 4, "125.00")}
    p.feed(CustomerMerged(kind="customer.unmerged", merge_id="m1", survivor_id="c_c", merged_id="c_d",
                          records=["c_d"], at=NOW + timedelta(minutes=1)))
    assert p.sheet("BJ-01", "2026-10") == apart


def test_scope_a_store_key_reads_its_own_store_and_sees_only_its_customers(p):
    p.feed(owner("c_own", "BJ-01"), owner("c_sh", "SH-02"),
           buy("c_own", "o1", at("2026-11-02", "12:00"), "100.00", covers=2),
           buy("c_sh", "s1", at("2026-11-02", "12:00"), "90.00", covers=3),  # a Shanghai customer dining in Beijing
           buy("c_sh", "s2", at("2026-11-03", "12:00"), "60.00", store="SH-02", covers=1))
    both = {"c_own": line(1, 1, "100.00", 2, "50.00"), "c_sh": line(1, 1, "90.00", 3, "30.00")}
    assert p.sheet("BJ-01", "2026-11") == both
    assert p.sheet("BJ-01", "2026-11", key=BJ) == {"c_own": both["c_own"]}
    assert p.sheet("BJ-01", "2026-11", key=NORTH) == {"c_own": both["c_own"]}
    assert p.sheet("SH-02", "2026-11", key=SH) == {"c_sh": line(1, 1, "60.00", 1, "60.00")}
    for key, store in ((SH, "BJ-01"), (BJ, "SH-02"), (NORTH, "SH-02"), (BJ, "XX-99")):
        r = p.get(key, store_id=store, month="2026-11")
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden_scope"), (key, store)


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "11-2026", "2026-11-01", "", "0999-01", "9999-12"])
def test_a_bad_month_is_a_422_naming_the_parameter(p, month):
    r = p.get(store_id="BJ-01", month=month)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error == {"code": "invalid_month", "message": "month: a month as YYYY-MM, such as 2026-11",
                     "details": {"parameter": "month"}}


def test_csv_by_accept_header_or_format(p):
    p.feed(tier("c_a", "A"),
           buy("c_a", "a1", at("2026-11-02", "12:00"), "1000.00", covers=10),
           buy("c_b", "b1", at("2026-11-02", "18:00"), "45.50"))
    expected = ("customer_id,visits,orders,spend,covers,spend_per_head,tier\n"
                "c_a,1,1,1000.00,10,100.00,A\n"
                "c_b,1,1,45.50,,,\n")
    for r in (p.http.get("/v1/reports/attendance", params={"store_id": "BJ-01", "month": "2026-11"},
                         headers={"Authorization": f"Bearer {ADMIN}", "Accept": "text/csv"}),
              p.get(store_id="BJ-01", month="2026-11", format="csv")):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert r.text == expected


def test_csv_of_a_store_id_with_characters_a_header_cannot_carry(p):
    # The store id went into Content-Disposition as given: a store named in Chinese (any id up to 64
    # characters is valid) made the CSV a 500 (a header is latin-1), a quote broke the file name.
    for store in ("北京-01", 'BJ"01'):
        p.feed(buy("c_a", f"a-{store}", at("2026-11-02", "12:00"), "10.00", store=store, covers=2))
        r = p.get(store_id=store, month="2026-11", format="csv")
        assert r.status_code == 200, r.text
        assert r.text == "customer_id,visits,orders,spend,covers,spend_per_head,tier\nc_a,1,1,10.00,2,5.00,\n"
        safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in store)
        assert r.headers["content-disposition"] == f'attachment; filename="attendance-{safe}-2026-11.csv"'


def test_refunds_beyond_their_order_take_no_other_order_s_spend(p):
    # One lunch of two orders (100.00 for 2, 50.00); the 50.00 order refunded 30.00 twice (re-sent under a new
    # id): it loses 50.00, not 60.00. Dinner: a refund of 70.00 before its 40.00 order, and a 60.00 order for 3.
    # Spend 100 + 0 + 0 + 60 = 160.00 over 5 covers = 32.00 a head, the member sales the store KPIs count.
    p.feed(refund("c_a", "r3", at("2026-11-02", "19:30"), "o3", "70.00"))
    p.feed(buy("c_a", "p1", at("2026-11-02", "12:00"), "100.00", covers=2, order="o1"),
           buy("c_a", "p2", at("2026-11-02", "12:30"), "50.00", order="o2"),
           buy("c_a", "p3", at("2026-11-02", "18:00"), "40.00", order="o3"),
           buy("c_a", "p4", at("2026-11-02", "18:30"), "60.00", covers=3, order="o4"),
           refund("c_a", "r2a", at("2026-11-02", "13:00"), "o2", "30.00"))
    p.feed(refund("c_a", "r2b", at("2026-11-02", "13:05"), "o2", "30.00"))
    assert p.sheet("BJ-01", "2026-11") == {"c_a": line(2, 4, "160.00", 5, "32.00")}
    kpi = p.http.get("/v1/reports/stores/BJ-01", params={"month": "2026-11"},
                     headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert kpi["member_sales"] == "160.00"


def test_a_member_s_order_refunded_at_a_till_that_named_no_one_comes_off_the_sheet(p):
    # The refund desk did not scan the card: the refund of c_a's lunch order comes with data.identity {} (a
    # non-member's refund, identity hands it on as store.sale). It still refunds c_a's order: the store KPIs'
    # member sales lose it, and so must the sheet (100.00 - 30.00 = 70.00 over 2 covers = 35.00 a head).
    p.feed(buy("c_a", "p1", at("2026-11-02", "12:00"), "100.00", covers=2, order="o1"))
    when = at("2026-11-03", "10:00")
    p.feed(StoreSaleRecorded(event={"specversion": "1.0", "id": "nr1", "source": "pos/BJ-01", "type": "crm.refund",
                                    "time": when.isoformat(), "data": {"identity": {}, "order_id": "o1",
                                                                       "amount": "30.00", "store_id": "BJ-01"}},
                             resolved_at=when))
    assert p.sheet("BJ-01", "2026-11") == {"c_a": line(1, 1, "70.00", 2, "35.00")}
    kpi = p.http.get("/v1/reports/stores/BJ-01", params={"month": "2026-11"},
                     headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert (kpi["member_sales"], kpi["sales"]) == ("70.00", "70.00")
