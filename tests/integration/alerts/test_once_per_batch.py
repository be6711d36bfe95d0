"""Alerts evaluates each customer once per batch, after all of the batch's messages about them (any topic,
any order), and an erasure of someone else inside the batch changes nothing for them: what a customer's
alerts show never depends on where a batch happened to be cut, or on another customer's erasure.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from services.alerts.messages import consume
from shared.contract import topics
from shared.contract.messages import AlertChanged, CustomerErased, ErasureConfirmed, ViewPartUpdated, encode
from shared.streaming.batch import Incoming
from tests.integration.alerts.harness import Harness, complaint, purchase

Z = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 12, tzinfo=Z)


def _loyalty(customer: str, balance: int, version: str) -> ViewPartUpdated:
    return ViewPartUpdated(customer_id=customer, part="loyalty", value={"points_balance": balance, "tier": None},
                           version=version)


def _erased(customer: str) -> CustomerErased:
    return CustomerErased(erasure_id=f"er_{customer}", customer_id=customer, records=[customer], at=NOW)


def _feed(h: Harness, *messages):
    """One batch, each message on the topic identity or loyalty publishes it on; returns its counts and what
    was published (decoded)."""
    batch = [Incoming(encode(m), topics.LOYALTY_EVENTS if isinstance(m, ViewPartUpdated) else topics.CUSTOMER_EVENTS,
                      0, i) for i, m in enumerate(messages)]
    outcome = consume(batch, deps=h.service.deps)
    h.service.relay(outcome.outbox)
    return outcome.counts, h.take()


def _alert_changes(sent: list) -> list[tuple[str, str, str]]:
    return [(m.customer_id, m.type, m.status) for m in sent if isinstance(m, AlertChanged)]


def _alerts_parts(sent: list) -> dict[str, list[str]]:
    return {m.customer_id: [a["type"] for a in m.value["open"]] for m in sent if isinstance(m, ViewPartUpdated)}


def test_a_purchase_and_its_loyalty_part_in_either_order_evaluate_the_customer_once(tmp_path):
    got = []
    for n, order in enumerate((("event", "part"), ("part", "event"))):
        h = Harness(tmp_path / str(n), NOW)
        one = {"event": purchase("c_p", "p1", NOW), "part": _loyalty("c_p", 7000, "000000000002")}
        counts, sent = _feed(h, *(one[k] for k in order), complaint("c_p", "x1", NOW))
        assert counts["evaluated"] == 1
        got.append((_alert_changes(sent), _alerts_parts(sent), sorted(h.open_types("c_p"))))
    assert got[0] == got[1]
    assert got[0][2] == ["complaint", "large_balance"]


def test_another_customers_erasure_inside_a_batch_changes_nothing_for_a_customer_on_both_sides_of_it(tmp_path):
    # c_k's balance is briefly large, then spent, within one batch; c_gone's erasure sits between the two parts.
    # Evaluated at the end of the batch, as without the erasure, c_k never had a large balance to act on: no
    # alert is raised and resolved again in the same instant.
    parts = (_loyalty("c_k", 9000, "000000000002"), _loyalty("c_k", 100, "000000000003"))
    plain = Harness(tmp_path / "plain", NOW)
    _feed(plain, complaint("c_gone", "g0", NOW))
    plain.take()
    plain_counts, plain_sent = _feed(plain, *parts)

    h = Harness(tmp_path / "erasure", NOW)
    _feed(h, complaint("c_gone", "g0", NOW))
    counts, sent = _feed(h, parts[0], complaint("c_gone", "g1", NOW), _erased("c_gone"), parts[1])

    assert counts["evaluated"] == plain_counts["evaluated"] == 1
    assert _alert_changes(sent) == _alert_changes(plain_sent) == []
    assert h.open_types("c_k") == {} and h.alerts(customer_id="c_k") == []
    # The erased customer: confirmed, and nothing else published about them (their alert went with them).
    assert [m.customer_id for m in sent if not isinstance(m, ErasureConfirmed)] == []
    assert [m.erasure_id for m in sent if isinstance(m, ErasureConfirmed)] == ["er_c_gone"]
    assert h.alerts(customer_id="c_gone") == []


def test_a_customer_erased_after_new_facts_in_the_same_batch_is_not_evaluated_or_announced(tmp_path):
    h = Harness(tmp_path, NOW)
    counts, sent = _feed(h, purchase("c_e", "p1", NOW), complaint("c_e", "x1", NOW), _erased("c_e"),
                         complaint("c_stay", "x2", NOW))
    assert counts["evaluated"] == 1  # c_stay only
    assert _alert_changes(sent) == [("c_stay", "complaint", "open")]
    assert {m.customer_id for m in sent if not isinstance(m, ErasureConfirmed)} == {"c_stay"}
    assert h.alerts(customer_id="c_e") == []
