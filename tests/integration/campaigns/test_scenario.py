"""The hand-built scenario (see ``scenario.py``) gives exactly the figures worked out by hand, on both
store adapters; relaunching, replaying, reordering and unmerging behave as they must."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from tests.integration.campaigns.scenario import (
    IDS,
    WHO,
    World,
    after_a,
    after_b,
    before_launch,
    launch,
    run,
)
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at
from tests.unit.campaigns.test_results import reference


def results(world: World, name: str) -> dict:
    r = world.http.get(f"/v1/campaigns/{IDS[name]}/results")
    assert r.status_code == 200, r.text
    return r.json()


def group(seg: dict) -> tuple:
    t, c = seg["treatment"], seg["control"]
    return (t["size"], t["converters"], t["revenue"], c["size"], c["converters"], c["revenue"])


def test_hand_built_scenario_gives_exactly_the_expected_results(store, tmp_path):
    world = World(store, tmp_path)
    run(world)
    a = results(world, "A")
    # 13 Shanghai customers match; x1 never consented, x2 withdrew, x3 had 2 touches (P0, P1) in 30 days.
    assert a["launch"] | {"as_of": None} == {"as_of": None, "matched": 13, "members": 10, "treatment": 6,
                                             "control": 4, "touches": 6, "bonus_grants": 6,
                                             "excluded": {"no_consent": 1, "opted_out": 1, "contact_cap": 1}}
    t, c = a["overall"]["treatment"], a["overall"]["control"]
    # Treatment: a1 200, a2 80 (at the touch itself; its purchase the day before does not count), the
    # survivor p of the merged w 500, n1 60 (a new customer). a3's purchase goes to B (last touch), a4's
    # is refunded in full and its second purchase is after the window.
    assert (t["size"], t["converters"], t["orders"], t["revenue"], t["average_order_value"]) == (
        6, 4, 4, "840.00", "210.00")
    # Control: a5 120 - 20 refunded, a7 40 (its later purchase goes to B); a8 bought as A's window closed.
    assert (c["size"], c["converters"], c["orders"], c["revenue"], c["average_order_value"]) == (
        4, 2, 2, "140.00", "70.00")
    want = reference(4, 6, 2, 4)
    lift = a["overall"]["lift"]
    for name in ("absolute", "ci_low", "ci_high", "z", "p_value", "relative", "relative_ci_low", "relative_ci_high"):
        assert lift[name] == pytest.approx(want[name], rel=1e-9), name
    assert a["overall"]["incremental_revenue"] == "630.00"  # 840 - 140 * 6 / 4
    assert a["cost"] == {"fixed": "100.00", "per_touch": "0.50", "touches": 6, "total": "103.00"}
    assert Decimal(a["roi"]) == Decimal("5.1165")  # (630 - 103) / 103 = 5.11650…
    assert {s["segment"]: group(s) for s in a["breakdowns"]["age_band"]} == {
        "<25": (3, 3, "340.00", 2, 1, "100.00"), "35-44": (3, 1, "500.00", 2, 1, "40.00")}
    assert {s["segment"]: group(s) for s in a["breakdowns"]["tier"]} == {
        "gold": (1, 0, "0.00", 1, 1, "40.00"), "unknown": (5, 4, "840.00", 3, 1, "100.00")}
    assert {s["segment"]: group(s) for s in a["breakdowns"]["home_store"]} == {
        "SH-001": (5, 3, "780.00", 0, 0, "0.00"), "SH-002": (0, 0, "0.00", 4, 2, "140.00"),
        "unknown": (1, 1, "60.00", 0, 0, "0.00")}
    # Purchases before the launch: n1 none, a2 two (day 3 and day 9), everyone else one.
    purchases = {s["segment"]: s for s in a["breakdowns"]["purchases_before"]}
    assert {k: group(s) for k, s in purchases.items()} == {
        "0": (1, 1, "60.00", 0, 0, "0.00"), "1": (4, 2, "700.00", 4, 2, "140.00"), "2-4": (1, 1, "80.00", 0, 0, "0.00")}
    # The 103.00 the campaign cost, shared by its six treatment members: 4 of them cost 68.67 (68.666…), and
    # 700 - 140 * 4 / 4 = 560 incremental gives (560 - 206/3) / (206/3) = 1474 / 206 = 7.15533…
    assert (purchases["1"]["cost"], purchases["1"]["roi"]) == ("68.67", "7.1553")
    assert (purchases["0"]["cost"], purchases["0"]["roi"]) == ("17.17", None)  # no control member to compare with
    assert [(s["segment"], s["cost"], s["roi"]) for s in a["breakdowns"]["touches_before"]] == [
        ("0", "103.00", "5.1165")]  # nobody in A had been touched
    assert [(d["day"], d["group"], d["new_converters"], d["returning_converters"], d["orders"], d["revenue"],
             d["new_orders"], d["returning_orders"]) for d in a["daily"]] == [
        ("2026-03-11", "treatment", 0, 1, 1, "80.00", 0, 1), ("2026-03-12", "control", 0, 1, 1, "40.00", 0, 1),
        ("2026-03-12", "treatment", 1, 1, 2, "260.00", 1, 1), ("2026-03-14", "control", 0, 1, 1, "100.00", 0, 1),
        ("2026-03-14", "treatment", 0, 1, 1, "500.00", 0, 1)]
    # Everyone's purchases from A's launch (day 10) to the end of its window (day 17): a2 80, a1 200, n1 60,
    # a7 40, a4 150 (refunded 150), a5 120 (refunded 20), p 500, a3 300, a7 90 (a8's at day 17 is outside).
    assert a["period"] == {"starts_at": "2026-03-11T04:00:00.000000Z", "ends_at": "2026-03-18T04:00:00.000000Z",
                           "orders": 9, "sales": "1370.00", "refunded": "170.00", "campaign_revenue": "840.00",
                           "share_of_sales": "0.6131", "incremental_share_of_sales": "0.4599"}  # 840, 630 / 1370

    b = results(world, "B")
    assert (b["launch"]["matched"], b["launch"]["treatment"], b["launch"]["control"]) == (5, 3, 2)
    # Treatment a7 90 and b1 70 (b3 bought as the window closed); control a3 300.
    assert group(b["overall"]) == (3, 2, "160.00", 2, 1, "300.00")
    assert b["overall"]["incremental_revenue"] == "-290.00"  # 160 - 300 * 3 / 2
    assert (b["cost"]["total"], b["roi"]) == ("3.00", "-97.6667")  # (-290 - 3) / 3
    # a3 (B's control) had A's touch four days before; the others none.
    assert {s["segment"]: group(s) for s in b["breakdowns"]["touches_before"]} == {
        "0": (3, 2, "160.00", 1, 0, "0.00"), "1": (0, 0, "0.00", 1, 1, "300.00")}

    audience = world.http.get(f"/v1/campaigns/{IDS['A']}/audience", params={"limit": 1000}).json()
    groups = {m["member_id"]: (m["group"], m["customer_id"]) for m in audience["items"]}
    assert groups == {WHO[r]: ("treatment", WHO["p"] if r == "w" else WHO[r])
                      for r in ("a1", "a2", "a3", "a4", "w", "n1")} | {
        WHO[r]: ("control", WHO[r]) for r in ("a5", "a6", "a7", "a8")}

    touches = world.messages("crm.campaigns.touches")
    assert sorted((m["_key"], m["campaign_id"]) for m in touches) == sorted(
        [(WHO[r], IDS["A"]) for r in ("a1", "a2", "a3", "a4", "w", "n1")]
        + [(WHO[r], IDS["B"]) for r in ("a7", "b1", "b3")] + [(WHO["x3"], IDS["P0"]), (WHO["x3"], IDS["P1"])])
    assert all(m["channel"] == "sms" for m in touches)
    assert [m["offer"] for m in touches if m["campaign_id"] == IDS["A"]] == [{"code": "SPRING"}] * 6
    grants = [m for m in world.messages("crm.campaigns.events") if m["kind"] == "campaign.bonus"]
    assert sorted(m["_key"] for m in grants) == sorted(WHO[r] for r in ("a1", "a2", "a3", "a4", "w", "n1"))
    assert {(m["multiplier"], m["active"], m["starts_at"], m["ends_at"]) for m in grants} == {
        ("2.00", True, "2026-03-11T04:00:00Z", "2026-03-21T04:00:00Z")}

    parts = world.view_parts()
    summary = {c: [(i["campaign_id"], i["group"], i["converted"]) for i in items] for c, items in parts.items()}
    assert summary[WHO["p"]] == [(IDS["A"], "treatment", True)]  # the merge carried w's membership
    assert summary[WHO["w"]] == []  # w is part of p now
    assert summary[WHO["a3"]] == [(IDS["A"], "treatment", False), (IDS["B"], "control", True)]
    assert summary[WHO["a7"]] == [(IDS["A"], "control", True), (IDS["B"], "treatment", True)]
    assert summary[WHO["b3"]] == [(IDS["B"], "treatment", False)]
    assert WHO["x1"] not in summary and WHO["n"] not in summary


def _snapshot(world: World) -> dict:
    out = {}
    for name in ("A", "B"):
        out[name] = results(world, name)
        out[f"{name}-audience"] = world.http.get(f"/v1/campaigns/{IDS[name]}/audience",
                                                 params={"limit": 1000}).json()
        out[f"{name}-csv"] = world.http.get(f"/v1/campaigns/{IDS[name]}/results.csv").text
    return out


def test_relaunching_and_replaying_change_no_assignment_and_no_figure(store, tmp_path):
    world = World(store, tmp_path)
    run(world)
    before, sent = _snapshot(world), len(world.published)
    for name, day in (("A", 31), ("B", 32)):
        again = launch(world, name, day)
        assert again["launch"] == before[name]["launch"]
    everything = before_launch() + after_a() + after_b()
    random.Random(5).shuffle(everything)
    outcome = world.feed(everything)
    # Every channel event is a duplicate; the merge and the six tier messages apply again to no effect.
    assert (outcome.processed, outcome.duplicates, outcome.dead_lettered) == (7, len(everything) - 7, 0)
    assert len(world.published) == sent, "a replay published something"
    assert _snapshot(world) == before


def test_arrival_order_does_not_change_the_results(store, tmp_path):
    first = World(store, tmp_path)
    run(first)
    from services.campaigns.store.sqlite import SqliteCampaignsStore

    other = World(SqliteCampaignsStore(tmp_path / "other.db"), tmp_path)
    run(other, order=lambda msgs: list(reversed(msgs)))  # the merge now lands after p's purchase, refunds first
    assert _snapshot(other) == _snapshot(first)
    assert other.view_parts() == first.view_parts()


def test_an_unmerge_splits_the_membership_back_exactly(store, tmp_path):
    world = World(store, tmp_path)
    run(world)
    world.feed([f.merged(WHO["p"], WHO["w"], [WHO["w"]], at(25), undo=True)])
    a = results(world, "A")
    assert group(a["overall"]) == (6, 3, "340.00", 4, 2, "140.00")  # p's 500 was p's, not w's
    parts = world.view_parts()
    assert [(i["group"], i["converted"]) for i in parts[WHO["w"]]] == [("treatment", False)]
    assert parts[WHO["p"]] == []
    world.feed([f.merged(WHO["p"], WHO["w"], [WHO["w"]], at(26))])
    assert group(results(world, "A")["overall"]) == (6, 4, "840.00", 4, 2, "140.00")


@pytest.mark.parametrize(("model", "want_a", "want_b"), [
    # a3's 300 (in both windows) and a7's 90 are split evenly between A and B.
    ("linear", (6, 5, "990.00", 4, 2, "185.00"), (3, 2, "115.00", 2, 1, "150.00")),
    # Both go to A, whose touch came first: B keeps only b1's 70.
    ("first_touch", (6, 5, "1140.00", 4, 2, "230.00"), (3, 1, "70.00", 2, 0, "0.00")),
])
def test_the_attribution_setting_decides_overlapping_credit(store, tmp_path, model, want_a, want_b):
    world = World(store, tmp_path, attribution=model)
    run(world)
    assert group(results(world, "A")["overall"]) == want_a
    assert group(results(world, "B")["overall"]) == want_b
    assert results(world, "A")["attribution"] == model
