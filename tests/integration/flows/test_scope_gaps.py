"""Issue 12, the scope gaps left after the first pass: the operations summary counted over the caller's scope,
the alerts scan and the rewards catalogue's writes company-wide, and a store-scoped reader's campaign results
computed over its stores' members only (figures counted by hand here, from the purchases the test sends)."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from decimal import Decimal

import pytest

from shared.settings import Settings
from tests.integration.flows.support import (
    ADMIN,
    OPERATOR,
    READER,
    Flow,
    at,
    event,
    new_id,
    new_phone,
    purchase,
    running_flow,
)

pytestmark = pytest.mark.broker

S01_READER, S01_OPERATOR, S01_ADMIN, S02_READER = "gaps-s01-reader", "gaps-s01-operator", "gaps-s01-admin", \
    "gaps-s02-reader"
CAMPAIGN = {"name": "Both stores", "objective": "promotion", "channel": "sms",
            "audience": {"home_stores": ["S01", "S02"]}, "offer": {"text": "tea on us"},
            "starts_at": "2026-11-20T00:00:00+08:00", "ends_at": "2026-11-30T00:00:00+08:00",
            "control_share": "0.5", "attribution_window_days": 14,
            "costs": {"fixed": "100.00", "per_touch": "0.50"}}


def _settings(broker: str, tmp_path) -> Settings:
    return Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path),
                    api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader,"
                             f"{S01_READER}:reader@store=S01,{S01_OPERATOR}:operator@store=S01,"
                             f"{S01_ADMIN}:admin@store=S01,{S02_READER}:reader@store=S02",
                    pseudonym_secret="gaps-test-secret-0123456789")


@pytest.fixture
def flow(broker, tmp_path) -> Iterator[Flow]:
    """The four services, with keys scoped to store S01 (reader, operator, admin) and to S02 (reader)."""
    with running_flow(_settings(broker, tmp_path)) as flow:
        yield flow


def _bought(phone: str, store: str) -> list[dict]:
    # Consent for the SMS campaign, and two purchase days at the store: the customer's home (owning) store.
    return [event("crm.consent", at("2026-11-01T09:00"), {"phone": phone}, purpose="sms", granted=True),
            purchase({"phone": phone}, at("2026-11-02T10:00"), "90.00", store=store),
            purchase({"phone": phone}, at("2026-11-03T10:00"), "10.00", store=store)]


def _forbidden_scope(r) -> bool:
    return r.status_code == 403 and r.json()["error"]["code"] == "forbidden_scope"


def test_the_summary_counts_only_the_customers_and_conflicts_a_scoped_reader_sees(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    stores = {"a1": "S01", "a2": "S01", "a3": "S01", "b1": "S02", "b2": "S02"}
    phones = {n: new_phone() for n in stores}
    openids = {"a": new_id("oA"), "b": new_id("oB")}
    flow.ingest(*(e for n, p in phones.items() for e in _bought(p, stores[n])),
                *(event("crm.follow", at("2026-11-04T09:00"), {"phone": phones[n + "1"], "wechat_openid": o},
                        source="wechat/oa") for n, o in openids.items()))
    # The same WeChat id with the store's second phone: one open conflict within S01, one within S02.
    flow.ingest(*(event("crm.follow", at("2026-11-05T09:00"), {"phone": phones[n + "2"], "wechat_openid": o},
                        source="wechat/oa") for n, o in openids.items()))
    identity = flow.platform["identity"]
    company = identity.api(READER).get("/v1/identity/summary").json()
    assert (company["customers"], company["open_conflicts"]) == (5, 2)
    assert isinstance(company["dead_letters"], int)
    assert identity.api(S01_READER).get("/v1/identity/summary").json() == {
        "customers": 3, "dead_letters": None, "open_conflicts": 1}
    assert identity.api(S02_READER).get("/v1/identity/summary").json() == {
        "customers": 2, "dead_letters": None, "open_conflicts": 1}


def test_the_alerts_scan_and_the_rewards_catalogue_writes_are_company_wide(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    alerts = flow.platform["alerts"]
    assert _forbidden_scope(alerts.api(S01_OPERATOR).post("/v1/alerts/scan"))
    assert alerts.api(OPERATOR).post("/v1/alerts/scan").status_code == 200

    loyalty = flow.platform["loyalty"]
    reward = {"name": "Tea", "points_cost": 10, "stock": 100}
    assert _forbidden_scope(loyalty.api(S01_ADMIN).post("/v1/loyalty/rewards", json=reward))
    assert loyalty.api(ADMIN).get("/v1/loyalty/rewards").json()["items"] == []
    r = loyalty.api(ADMIN).post("/v1/loyalty/rewards", json=reward)
    assert r.status_code == 201, r.text
    made = r.json()
    url = f"/v1/loyalty/rewards/{made['reward_id']}"
    assert _forbidden_scope(loyalty.api(S01_ADMIN).patch(url, json={"points_cost": 1, "add_stock": 5}))
    assert loyalty.api(ADMIN).get(url).json() == made
    r = loyalty.api(ADMIN).patch(url, json={"points_cost": 12})
    assert (r.status_code, r.json()["points_cost"]) == (200, 12)


def test_a_store_scoped_reader_reads_a_campaigns_results_over_its_stores_members_only(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    stores = {"a1": "S01", "a2": "S01", "a3": "S01", "a4": "S01", "a5": "S01", "a6": "S01",
              "b1": "S02", "b2": "S02", "b3": "S02", "b4": "S02"}
    phones = {n: new_phone() for n in stores}
    flow.ingest(*(e for n, p in phones.items() for e in _bought(p, stores[n])))
    ids = {n: flow.customer_id(phone=p) for n, p in phones.items()}
    r = flow.campaigns.post("/v1/campaigns", json=CAMPAIGN)
    assert r.status_code == 201, r.text
    cid = r.json()["campaign_id"]
    assert flow.campaigns.post(f"/v1/campaigns/{cid}/launch").status_code == 200
    flow.platform.settle()
    audience = flow.campaigns.get(f"/v1/campaigns/{cid}/audience", params={"limit": 100}).json()["items"]
    group = {m["member_id"]: m["group"] for m in audience}
    assert set(group) == set(ids.values())
    # After the launch, inside the window: one order each for some of S01's and S02's members.
    spent = {"a1": "50.00", "a2": "20.00", "a4": "7.00", "b1": "70.00", "b3": "300.00"}
    flow.ingest(*(purchase({"phone": phones[n]}, at("2026-11-21T10:00"), amount, store=stores[n])
                  for n, amount in spent.items()))

    def by_hand(names: list[str], grp: str) -> dict:
        mine = [n for n in names if group[ids[n]] == grp]
        buyers = [n for n in mine if n in spent]
        return {"size": len(mine), "converters": len(buyers), "orders": len(buyers),
                "revenue": sum((Decimal(spent[n]) for n in buyers), Decimal("0.00"))}

    def figures(g: dict) -> dict:
        return {"size": g["size"], "converters": g["converters"], "orders": g["orders"],
                "revenue": Decimal(g["revenue"])}

    s01 = [n for n in stores if stores[n] == "S01"]
    campaigns = flow.platform["campaigns"]
    mine = campaigns.api(S01_READER).get(f"/v1/campaigns/{cid}/results")
    assert mine.status_code == 200, mine.text
    mine = mine.json()
    assert mine["scope"] == {"kind": "store", "stores": ["S01"], "note": mine["scope"]["note"]}
    for grp in ("treatment", "control"):
        assert figures(mine["overall"][grp]) == by_hand(s01, grp), grp
    # The home-store breakdown holds S01's segment only; cost, ROI, touches and the period's sales are left out.
    assert [s["segment"] for s in mine["breakdowns"]["home_store"]] == ["S01"]
    assert (mine["cost"]["touches"], mine["cost"]["total"], mine["roi"], mine["period"]) == (None, None, None, None)
    assert all(s["cost"] is None and s["roi"] is None for segs in mine["breakdowns"].values() for s in segs)
    t, c = by_hand(s01, "treatment"), by_hand(s01, "control")
    if t["size"] and c["size"]:
        expected = t["revenue"] - c["revenue"] * t["size"] / c["size"]
        assert Decimal(mine["incremental_revenue"]) == expected.quantize(Decimal("0.01"))
    else:  # the split put all of S01's members in one group: nothing to compare with
        assert mine["incremental_revenue"] is None
    # The daily series: one day, the S01 buyers' orders and revenue by group.
    assert sorted((d["day"], d["group"], d["orders"], Decimal(d["revenue"])) for d in mine["daily"]) == sorted(
        ("2026-11-21", grp, by_hand(s01, grp)["orders"], by_hand(s01, grp)["revenue"])
        for grp in ("treatment", "control") if by_hand(s01, grp)["orders"])

    rows = list(csv.DictReader(io.StringIO(campaigns.api(S01_READER).get(f"/v1/campaigns/{cid}/results.csv").text)))
    overall = {r["group"]: r for r in rows if r["breakdown"] == "overall"}
    for grp in ("treatment", "control"):
        want = by_hand(s01, grp)
        assert (int(overall[grp]["size"]), int(overall[grp]["converters"]), Decimal(overall[grp]["revenue"])) == (
            want["size"], want["converters"], want["revenue"])
        assert (overall[grp]["cost"], overall[grp]["roi"]) == ("", "")
    assert {r["segment"] for r in rows if r["breakdown"] == "home_store"} == {"S01"}
    daily = list(csv.DictReader(io.StringIO(campaigns.api(S01_READER).get(f"/v1/campaigns/{cid}/daily.csv").text)))
    assert sorted((r["group"], int(r["orders"]), Decimal(r["revenue"])) for r in daily) == sorted(
        (grp, by_hand(s01, grp)["orders"], by_hand(s01, grp)["revenue"])
        for grp in ("treatment", "control") if by_hand(s01, grp)["orders"])

    # A company-wide reader sees the whole campaign, cost and period included, and no scope.
    everyone = campaigns.api(READER).get(f"/v1/campaigns/{cid}/results").json()
    assert everyone["scope"] is None
    for grp in ("treatment", "control"):
        assert figures(everyone["overall"][grp]) == by_hand(list(stores), grp), grp
    assert [s["segment"] for s in everyone["breakdowns"]["home_store"]] == ["S01", "S02"]
    treated = by_hand(list(stores), "treatment")["size"]
    assert everyone["cost"]["touches"] == treated
    assert Decimal(everyone["cost"]["total"]) == Decimal("100.00") + Decimal("0.50") * treated
    assert everyone["period"] is not None
    # Moving and launching stay closed to a store's keys.
    assert _forbidden_scope(campaigns.api(S01_OPERATOR).post(f"/v1/campaigns/{cid}/pause"))
    assert _forbidden_scope(campaigns.api(S01_READER).get(f"/v1/campaigns/{cid}/preview"))


def test_complaints_kept_before_complaint_stores_existed_give_their_customer_an_owner_at_the_next_start(
        broker, tmp_path):
    settings = _settings(broker, tmp_path)
    phone = new_phone()
    with running_flow(settings) as flow:
        flow.set_clocks(at("2026-11-20T12:00"))
        flow.ingest(event("crm.complaint", at("2026-11-20T11:00"), {"phone": phone}, source="wechat/oa",
                          text="cold soup", store_id="S01", severity="high"))
        customer = flow.customer_id(phone=phone)
    # The identity file as a release before complaint_stores left it: the complaint kept in the timeline only,
    # so the customer, who never bought, was owned by no store.
    with sqlite3.connect(tmp_path / "crm.identity.db") as db:
        db.execute("DELETE FROM complaint_stores")
        db.execute("DELETE FROM backfills")
        db.execute("UPDATE customer_owners SET store_id = NULL")
    with running_flow(settings) as flow:
        identity = flow.platform["identity"]
        # Announced through the outbox at start; the sweep every worker runs publishes it (here, at once).
        identity.service.relay(identity.service.store.outbox_pending())
        flow.platform.settle()
        assert identity.api(S01_READER).get(f"/v1/customers/{customer}").json()["customer_id"] == customer
        assert identity.api(S02_READER).get(f"/v1/customers/{customer}").status_code == 404
        assert flow.platform["loyalty"].api(S01_READER).get(f"/v1/loyalty/accounts/{customer}").status_code == 200
        assert identity.api(S01_READER).get("/v1/identity/summary").json()["customers"] == 1
