"""Attribution: windows, overlapping campaigns by model, refunds, merged members, arrival order."""

from __future__ import annotations

import itertools
import random

import pytest

from services.campaigns.domain.attribution import (
    Enrolment,
    Refund,
    Sale,
    collapse,
    credits,
    net_amounts,
    outcomes,
    split,
    view_items,
)

A = Enrolment("cmp_a", "c1", "c1", "treatment", at_ms=1_000, window_ms=500)
B = Enrolment("cmp_b", "c1", "c1", "control", at_ms=1_200, window_ms=500)


def sale(sid: str, ms: int, amount: int, customer: str = "c1", order: str | None = None) -> Sale:
    return Sale(customer, "pos/SH-001", sid, order or sid, amount, ms, "2026-03-11")


def shares(model: str, *sales: Sale, refunds=(), enrolled=(A, B)) -> dict[tuple[str, str], int]:
    return {(c.campaign_id, c.sale.id): c.revenue_minor for c in credits(list(enrolled), sales, refunds, model)}


def test_window_opens_at_the_touch_and_closes_before_its_end():
    got = shares("last_touch", sale("early", 999, 100), sale("open", 1_000, 100), sale("last", 1_499, 100),
                 sale("closed", 1_500, 100), enrolled=(A,))
    assert got == {("cmp_a", "open"): 100, ("cmp_a", "last"): 100}


@pytest.mark.parametrize(("model", "want"), [
    ("last_touch", {("cmp_a", "s1"): 100, ("cmp_b", "s2"): 101, ("cmp_b", "s3"): 100}),
    ("first_touch", {("cmp_a", "s1"): 100, ("cmp_a", "s2"): 101, ("cmp_b", "s3"): 100}),
    ("linear", {("cmp_a", "s1"): 100, ("cmp_a", "s2"): 51, ("cmp_b", "s2"): 50, ("cmp_b", "s3"): 100}),
])
def test_overlapping_campaigns_share_by_model(model, want):
    # s1 only in A's window, s2 in both, s3 only in B's (A's closed at 1,500).
    assert shares(model, sale("s1", 1_100, 100), sale("s2", 1_300, 101), sale("s3", 1_600, 100)) == want


def test_linear_split_keeps_every_fen():
    assert split(101, 2) == [51, 50] and split(100, 3) == [34, 33, 33] and split(1, 3) == [1, 0, 0]
    assert sum(split(987_654_321, 7)) == 987_654_321


def test_refunds_reduce_the_purchase_of_their_order_earliest_first():
    sales = [sale("p1", 1_100, 10_000, order="o1"), sale("p2", 1_150, 5_000, order="o1"), sale("p3", 1_200, 700)]
    refunds = [Refund("c1", "pos/SH-001", "r1", "o1", 3_000), Refund("c1", "pos/SH-001", "r2", "o1", 8_000),
               Refund("c2", "pos/SH-001", "r3", "p3", 700)]  # another customer's order of the same id
    assert net_amounts(sales, refunds) == {("pos/SH-001", "p1"): 0, ("pos/SH-001", "p2"): 4_000,
                                           ("pos/SH-001", "p3"): 700}


def test_a_purchase_refunded_in_full_converts_no_one():
    refunds = [Refund("c1", "pos/SH-001", "r1", "o1", 10_000)]
    done = outcomes([A], credits([A], [sale("p1", 1_100, 10_000, order="o1")], refunds, "last_touch"))
    assert done[("cmp_a", "c1")].converted is False and done[("cmp_a", "c1")].revenue_minor == 0
    partly = [Refund("c1", "pos/SH-001", "r1", "o1", 2_500)]
    done = outcomes([A], credits([A], [sale("p1", 1_100, 10_000, order="o1")], partly, "last_touch"))
    assert (done[("cmp_a", "c1")].converted, done[("cmp_a", "c1")].revenue_minor) == (True, 7_500)


def test_members_merged_into_one_customer_count_once_with_the_survivors_own_membership():
    merged_away = Enrolment("cmp_a", "c_w", "c_p", "control", 1_000, 500)
    own = Enrolment("cmp_a", "c_p", "c_p", "treatment", 1_000, 500)
    other = Enrolment("cmp_a", "c_z", "c_p", "control", 1_000, 500)
    assert collapse([merged_away, other, own]) == [own]
    assert collapse([other, merged_away]) == [merged_away]  # no own membership: the lowest member id
    done = outcomes([merged_away, own], credits([merged_away, own], [sale("p", 1_200, 300, "c_p")], [], "last_touch"))
    assert list(done) == [("cmp_a", "c_p")] and done[("cmp_a", "c_p")].revenue_minor == 300


def test_outcomes_count_orders_revenue_and_the_first_conversion():
    sales = [sale("p2", 1_300, 200), sale("p1", 1_100, 100)]
    done = outcomes([A], credits([A], sales, [], "last_touch"))[("cmp_a", "c1")]
    assert (done.converted, done.orders, done.revenue_minor, done.first_ms) == (True, 2, 300, 1_100)


def test_results_do_not_depend_on_the_order_facts_arrive_in():
    rng = random.Random(7)
    enrolled = [A, B, Enrolment("cmp_a", "c2", "c2", "control", 1_000, 500)]
    sales = [sale(f"s{i}", 900 + 40 * i, 100 + i, rng.choice(["c1", "c2"]), order=f"o{i % 5}") for i in range(20)]
    refunds = [Refund(rng.choice(["c1", "c2"]), "pos/SH-001", f"r{i}", f"o{i}", 30) for i in range(5)]
    want = None
    for model in ("last_touch", "first_touch", "linear"):
        want = outcomes(enrolled, credits(enrolled, sales, refunds, model))
        for _ in range(20):
            e, s, r = (rng.sample(x, len(x)) for x in (enrolled, sales, refunds))
            assert outcomes(e, credits(e, s, r, model)) == want
    assert want is not None and any(o.converted for o in want.values())


def test_view_items_list_every_campaign_of_the_customer():
    done = outcomes([A, B], credits([A, B], [sale("s", 1_100, 100)], [], "last_touch"))
    items = view_items([B, A], done, {"cmp_a": "Spring", "cmp_b": "VIP"})
    assert items == {"c1": [
        {"campaign_id": "cmp_a", "name": "Spring", "group": "treatment", "converted": True,
         "assigned_at": "1970-01-01T00:00:01.000000Z"},
        {"campaign_id": "cmp_b", "name": "VIP", "group": "control", "converted": False,
         "assigned_at": "1970-01-01T00:00:01.200000Z"},
    ]}


def test_every_permutation_of_three_campaigns_gives_the_same_linear_credit():
    enrolled = [Enrolment(f"cmp_{k}", "c1", "c1", "treatment", 1_000 + k, 1_000) for k in range(3)]
    want = shares("linear", sale("s", 1_500, 100), enrolled=enrolled)
    assert want == {("cmp_0", "s"): 34, ("cmp_1", "s"): 33, ("cmp_2", "s"): 33}
    for order in itertools.permutations(enrolled):
        assert shares("linear", sale("s", 1_500, 100), enrolled=order) == want
