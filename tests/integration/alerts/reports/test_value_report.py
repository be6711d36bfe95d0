"""``GET /v1/reports/customer-value`` (issue 15, part 4) over a hand-built history sent through alerts' consume
path: a late purchase, a refund after and one before its purchase, a merge and an unmerge changing past months,
and the caller's scope. Every figure is worked out by hand in the comments."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from services.alerts.app import create_app
from services.alerts.config import AlertsConfig
from services.alerts.messages import consume
from services.alerts.reports.value import Rfm, Standing, standing_of
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract import topics
from shared.contract.messages import (
    CustomerErased,
    CustomerEventResolved,
    CustomerMerged,
    CustomerOwnerChanged,
    encode,
)
from shared.settings import Settings
from shared.streaming.batch import Incoming
from tests.integration.alerts.harness import channel, purchase

Z = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 7, 1, 9, tzinfo=Z)
KEYS = "k-admin:admin,k-s01:reader@store=S01,k-east:reader@region=east"
STORES = "store_id,name,region,timezone\nS01,One,east,Asia/Shanghai\nS02,Two,east,Asia/Shanghai\n" \
         "S03,Three,west,Asia/Shanghai\n"


def _at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T12:00:00").replace(tzinfo=Z)


def _buy(customer: str, eid: str, day: str, amount: str, store: str = "S01") -> CustomerEventResolved:
    return purchase(customer, eid, _at(day), store=store, amount=amount)


def _refund(customer: str, eid: str, day: str, order: str, amount: str) -> CustomerEventResolved:
    return channel(customer, "crm.refund", eid, _at(day), {"order_id": order, "amount": amount})


class Alerts:
    """Alerts in-process with a stores registry and scoped keys; messages fed as its agents feed them."""

    def __init__(self, tmp) -> None:
        (tmp / "stores.csv").write_text(STORES)
        self.store = SqliteAlertsStore(tmp / "alerts.db")
        settings = Settings(_env_file=None, api_keys=KEYS, stores_file=str(tmp / "stores.csv"))
        self.service = create_app(settings, store=self.store, publish=lambda _: None, clock=lambda: NOW,
                                  config=AlertsConfig(_env_file=None))
        self.http = TestClient(self.service.api)
        self.offset = 0

    def feed(self, *messages) -> None:
        batch = []
        for m in messages:
            topic = {CustomerMerged: topics.CUSTOMER_MERGED, CustomerOwnerChanged: topics.CUSTOMER_OWNERS}.get(
                type(m), topics.CUSTOMER_EVENTS)
            self.offset += 1
            batch.append(Incoming(encode(m), topic, 0, self.offset))
        consume(batch, deps=self.service.deps)

    def report(self, key: str = "k-admin", **params):
        return self.http.get("/v1/reports/customer-value", params={"as_of": "2026-06-30", **params},
                             headers={"Authorization": f"Bearer {key}"})


MERGE = CustomerMerged(kind="customer.merged", merge_id="m1", survivor_id="c3", merged_id="c6", records=["c6"],
                       at=_at("2026-06-28"))
UNMERGE = CustomerMerged(kind="customer.unmerged", merge_id="m1", survivor_id="c3", merged_id="c6",
                         records=["c6"], at=_at("2026-06-29"))


@pytest.fixture
def alerts(tmp_path):
    a = Alerts(tmp_path)
    a.feed(*[CustomerOwnerChanged(customer_id=c, store_id=s, at=_at("2025-01-01"))
             for c, s in (("c1", "S01"), ("c2", "S01"), ("c3", "S01"), ("c6", "S01"), ("c4", "S02"),
                          ("c5", "S03"))])
    a.feed(_buy("c1", "e1", "2025-06-15", "100.00"), _buy("c1", "e3", "2026-01-10", "300.00"),
           _buy("c1", "e4", "2026-06-20", "600.00"), _buy("c2", "e5", "2026-06-25", "5000.00"),
           _buy("c3", "e6", "2026-01-05", "200.00"), _buy("c3", "e7", "2026-01-20", "200.00"),
           _buy("c6", "e8", "2026-06-01", "800.00"), _buy("c4", "e9", "2026-03-01", "100.00", store="S02"),
           _refund("c5", "x2", "2026-05-02", "e10", "20.00"))  # refunded before its purchase arrives
    a.feed(_refund("c2", "x1", "2026-06-26", "e5", "1000.00"),  # a refund after its purchase
           _buy("c5", "e10", "2026-05-01", "50.00", store="S03"),
           _buy("c1", "e2", "2025-09-10", "300.00"))  # a late purchase: lands on its own day, in 2025
    a.feed(MERGE)
    return a


def test_the_company_report_ranks_scores_and_stages_every_customer(alerts):
    r = alerts.report()
    assert r.status_code == 200, r.text
    body = r.json()
    # Period 2025-07-01..2026-06-30. Net: c2 5000-1000, c1 300+300+600 (2025-06-15 is before the period),
    # c3 with c6 merged 200+200+800, c4 100, c5 50-20. Five customers: cuts ceil(.05)=1, ceil(.25)=1, ceil(1)=1.
    assert (body["period_from"], body["period_to"], body["customers"], body["revenue"]) == (
        "2025-07-01", "2026-06-30", 5, "6530.00")
    assert body["pyramid"] == [
        {"level": "top", "customers": 1, "customer_share": 0.2, "revenue": "4000.00", "revenue_share": 0.6126},
        {"level": "big", "customers": 0, "customer_share": 0.0, "revenue": "0.00", "revenue_share": 0.0},
        {"level": "medium", "customers": 0, "customer_share": 0.0, "revenue": "0.00", "revenue_share": 0.0},
        {"level": "small", "customers": 4, "customer_share": 0.8, "revenue": "2530.00", "revenue_share": 0.3874}]
    # R (days since last): c2 5, c1 10, c3 29, c5 60, c4 121 -> 5,4,3,2,1. F (period days): c1 3, c3 3, others 1
    # -> 4,4,1,1,1. M: c2 > c1 = c3 > c4 > c5 -> 5,3,3,2,1. c1 and c3 tie at 1200.00: c1 first by id.
    rows = [(i["customer_id"], i["net_spend"], i["pyramid_level"], i["recency"], i["frequency"], i["monetary"],
             i["rfm_segment"], i["lifecycle_stage"]) for i in body["items"]]
    assert rows == [
        ("c2", "4000.00", "top", 5, 1, 5, "promising", "exploration"),
        ("c1", "1200.00", "small", 4, 4, 3, "loyal", "stability"),  # 4 days, first 380 days ago, 10 silent
        ("c3", "1200.00", "small", 3, 4, 3, "loyal", "formation"),  # 3 days with c6's; 29 silent of mean 73.5
        ("c4", "100.00", "small", 1, 1, 2, "hibernating", "exploration"),
        ("c5", "30.00", "small", 2, 1, 1, "hibernating", "exploration")]
    assert {s["segment"]: s["customers"] for s in body["rfm_segments"]} == {
        "champions": 0, "loyal": 2, "promising": 1, "at_risk": 0, "hibernating": 2, "need_attention": 0}
    assert [(s["stage"], s["label"], s["customers"]) for s in body["lifecycle_stages"]] == [
        ("exploration", "考察期", 3), ("formation", "形成期", 1), ("stability", "稳定期", 1), ("decline", "退化期", 0)]


def test_an_unmerge_splits_the_past_again(alerts):
    alerts.feed(UNMERGE)
    body = alerts.report().json()
    # Six customers: cuts ceil(.06)=1, ceil(.3)=1, ceil(1.2)=2. c3 alone: 01-05 and 01-20, silent 161 days,
    # more than twice its 15-day rhythm: decline; c6's one purchase: exploration.
    assert [(i["customer_id"], i["net_spend"], i["pyramid_level"], i["lifecycle_stage"]) for i in body["items"]] == [
        ("c2", "4000.00", "top", "exploration"), ("c1", "1200.00", "medium", "stability"),
        ("c6", "800.00", "small", "exploration"), ("c3", "400.00", "small", "decline"),
        ("c4", "100.00", "small", "exploration"), ("c5", "30.00", "small", "exploration")]
    assert [x["customers"] for x in body["pyramid"]] == [1, 0, 1, 4]


def test_a_past_as_of_counts_only_what_happened_by_then(alerts):
    body = alerts.report(as_of="2025-12-31", months=6).json()
    # Period 2025-07-01..2025-12-31: only c1's late purchase of 2025-09-10; c1 has 2 days by then.
    assert (body["period_from"], body["customers"], body["revenue"]) == ("2025-07-01", 1, "300.00")
    assert [(i["customer_id"], i["pyramid_level"], i["lifecycle_stage"]) for i in body["items"]] == [
        ("c1", "top", "formation")]


def test_scoped_keys_see_their_own_stores_customers_only(alerts):
    s01 = alerts.report("k-s01").json()
    # S01 owns c1, c2 and c3 (c6 merged into it): three customers, cuts 1, 1, 1.
    assert [i["customer_id"] for i in s01["items"]] == ["c2", "c1", "c3"]
    assert (s01["customers"], s01["revenue"]) == (3, "6400.00")
    refused = alerts.report("k-s01", store_id="S02")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden_scope"
    east = alerts.report("k-east").json()
    assert [i["customer_id"] for i in east["items"]] == ["c2", "c1", "c3", "c4"]  # c5 is owned in the west
    assert [i["customer_id"] for i in alerts.report("k-east", store_id="S02").json()["items"]] == ["c4"]
    assert alerts.report("k-east", store_id="S03").status_code == 403
    assert [i["customer_id"] for i in alerts.report(store_id="S03").json()["items"]] == ["c5"]


def test_csv_lists_every_customer_and_a_bad_day_names_the_parameter(alerts):
    r = alerts.report(format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[:3] == [
        "customer_id,net_spend,pyramid_level,recency,frequency,monetary,rfm_segment,lifecycle_stage",
        "c2,4000.00,top,5,1,5,promising,exploration", "c1,1200.00,small,4,4,3,loyal,stability"]
    by_accept = alerts.http.get("/v1/reports/customer-value", params={"as_of": "2026-06-30"},
                                headers={"Authorization": "Bearer k-admin", "Accept": "text/csv"})
    assert by_accept.text == r.text
    bad = alerts.report(as_of="2026-13-01")
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"] == "query.as_of"


def test_standing_of_gives_one_customers_place_among_every_customer(alerts):
    day = date(2026, 6, 30)
    # The figures of the company report above; a merged-away id answers for its survivor.
    assert standing_of(alerts.store, "c1", day) == Standing("c1", 120000, Rfm(4, 4, 3, "loyal"), "small", "stability")
    assert standing_of(alerts.store, "c6", day) == Standing("c3", 120000, Rfm(3, 4, 3, "loyal"), "small", "formation")
    assert standing_of(alerts.store, "c_nobody", day) is None
    # As of 2025-12-31 (12 months from 2025-01-01): c1 alone, with its purchases of 2025-06-15 and 2025-09-10.
    assert standing_of(alerts.store, "c1", date(2025, 12, 31)) == Standing("c1", 40000, Rfm(1, 1, 1, "hibernating"),
                                                                           "top", "formation")


def _ranked(body) -> list[tuple[str, str]]:
    return [(i["customer_id"], i["net_spend"]) for i in body["items"]]


def test_a_kept_report_follows_every_write_it_reads(alerts):
    day = date(2026, 6, 30)
    base = [("c2", "4000.00"), ("c1", "1200.00"), ("c3", "1200.00"), ("c4", "100.00"), ("c5", "30.00")]
    assert _ranked(alerts.report().json()) == base
    assert _ranked(alerts.report().json()) == base  # kept: the same answer
    assert standing_of(alerts.store, "c4", day).level == "small"
    alerts.feed(_buy("c4", "e11", "2026-06-30", "5000.00", store="S02"))  # a purchase
    assert _ranked(alerts.report().json())[:2] == [("c4", "5100.00"), ("c2", "4000.00")]
    assert standing_of(alerts.store, "c4", day).level == "top"
    alerts.feed(_refund("c4", "x3", "2026-06-30", "e11", "9000.00"))  # a refund, over its order: takes 5000.00
    body = alerts.report().json()
    assert (_ranked(body), body["revenue"]) == (base, "6530.00")
    assert standing_of(alerts.store, "c4", day).level == "small"
    assert _ranked(alerts.report("k-s01").json()) == [("c2", "4000.00"), ("c1", "1200.00"), ("c3", "1200.00")]
    alerts.feed(UNMERGE)  # an unmerge
    assert _ranked(alerts.report().json()) == [("c2", "4000.00"), ("c1", "1200.00"), ("c6", "800.00"),
                                               ("c3", "400.00"), ("c4", "100.00"), ("c5", "30.00")]
    assert _ranked(alerts.report("k-s01").json()) == [("c2", "4000.00"), ("c1", "1200.00"), ("c6", "800.00"),
                                                      ("c3", "400.00")]
    alerts.feed(CustomerOwnerChanged(customer_id="c4", store_id="S01", at=_at("2026-06-30")))  # an owner change
    assert _ranked(alerts.report("k-s01").json())[-1] == ("c4", "100.00")
    alerts.feed(CustomerErased(erasure_id="er1", customer_id="c2", records=["c2"], at=_at("2026-06-30")))
    assert [c for c, _ in _ranked(alerts.report().json())] == ["c1", "c6", "c3", "c4", "c5"]  # an erasure
    assert standing_of(alerts.store, "c2", day) is None


def test_refunds_take_off_at_most_their_orders_amount(alerts):
    alerts.feed(_buy("c7", "e20", "2026-06-01", "100.00", store="S03"),
                _refund("c7", "x20", "2026-06-02", "e20", "150.00"),  # over its order of 100.00: 100.00
                _buy("c7", "e21", "2026-06-03", "60.00", store="S03"),
                _refund("c7", "x21", "2026-06-04", "e21", "40.00"),
                _refund("c7", "x23", "2026-06-05", "e23", "90.00"))  # before its purchase of 70.00
    alerts.feed(_refund("c7", "x22", "2026-06-05", "e21", "30.00"),  # 40.00 + 30.00 over 60.00: 20.00 more
                _buy("c7", "e23", "2026-06-04", "70.00", store="S03"),
                _buy("c7", "e24", "2026-06-06", "10.00", store="S03"))
    c7 = next(i for i in alerts.report().json()["items"] if i["customer_id"] == "c7")
    # 100 - 100 + 60 - 60 + 70 - 70 + 10: only the last purchase's 10.00 is left.
    assert c7["net_spend"] == "10.00"
