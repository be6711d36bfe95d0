"""Arrival order never matters: the same messages in every order give the same alerts and the same view
parts, and at no point does a customer hold two active alerts of one type.

Two customers complain, one also answers a survey badly; identity merges them and later undoes the merge.
Identity resolved each event before or after the merge (``record_id`` the customer's own record,
``customer_id`` the customer it belonged to then); the merge and the unmerge carry identity's times, so
the membership mapping ends the same in every order.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.alerts.config import AlertsConfig, RulesInForce
from services.alerts.handlers import Deps
from services.alerts.messages import consume
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract import topics
from shared.contract.messages import CustomerMerged, ViewPartUpdated, decode, encode
from shared.settings import Settings
from shared.streaming.batch import Incoming
from tests.integration.alerts.harness import channel, complaint

Z = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 12, tzinfo=Z)
T = NOW - timedelta(hours=6)

XA = complaint("c_a", "xa", T, resolved_at=T)  # resolved before the merge
XB = complaint("c_b", "xb", T + timedelta(hours=1), resolved_at=T + timedelta(hours=1))
SB = channel("c_b", "crm.survey", "sb", T + timedelta(hours=2), {"score": 3}, source="wechat/oa",
             resolved_at=T + timedelta(hours=2))
# Resolved after the merge: identity already knew c_b's record as part of c_a.
XB_LATE = complaint("c_a", "xb2", T + timedelta(hours=4), record="c_b", resolved_at=T + timedelta(hours=4))
MERGE = CustomerMerged(kind="customer.merged", merge_id="m1", survivor_id="c_a", merged_id="c_b", records=["c_b"],
                       at=T + timedelta(hours=3))
UNMERGE = CustomerMerged(kind="customer.unmerged", merge_id="m1", survivor_id="c_a", merged_id="c_b",
                         records=["c_b"], at=T + timedelta(hours=5))


def _run(tmp_path, n: int, order) -> tuple[dict, dict]:
    store = SqliteAlertsStore(tmp_path / f"order{n}.db")
    sent: list = []
    deps = Deps(store=store, settings=Settings(_env_file=None), config=AlertsConfig(_env_file=None),
                rules=RulesInForce(), clock=lambda: NOW)
    for offset, m in enumerate(order):
        topic = topics.CUSTOMER_MERGED if isinstance(m, CustomerMerged) else topics.CUSTOMER_EVENTS
        outcome = consume([Incoming(encode(m), topic, 0, offset)], deps=deps)
        assert outcome.dead_lettered == 0
        sent += outcome.outbox
        doubled = store.db.conn().execute(
            "SELECT customer_id, type FROM alerts WHERE status IN ('open', 'acknowledged')"
            " GROUP BY customer_id, type HAVING COUNT(*) > 1").fetchall()
        assert doubled == [], f"two active alerts of one type after {m.kind}"
    alerts = {(a.customer_id, a.type): a.repeats for a in store.active_alerts(["c_a", "c_b"])}
    parts: dict[str, list] = {"c_a": [], "c_b": []}
    for msg in sent:
        part = decode(msg.value)
        if isinstance(part, ViewPartUpdated):
            parts[part.customer_id] = sorted((a["type"], a["repeats"]) for a in part.value["open"])
    store.close()
    return alerts, parts


CASES = {
    "merged": ([XA, XB, SB, MERGE],
               {("c_a", "complaint"): 1, ("c_a", "survey_low"): 0}),
    "merged_then_undone": ([XA, XB, SB, MERGE, UNMERGE],
                           {("c_a", "complaint"): 0, ("c_b", "complaint"): 0, ("c_b", "survey_low"): 0}),
    "only_the_merged_one_complained": ([XB, MERGE, UNMERGE], {("c_b", "complaint"): 0}),
    "a_complaint_resolved_into_the_survivor": ([XA, XB, XB_LATE, MERGE, UNMERGE],
                                               {("c_a", "complaint"): 0, ("c_b", "complaint"): 1}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_arrival_order_gives_the_same_alerts_and_view_parts(tmp_path, case):
    messages, want = CASES[case]
    for n, order in enumerate(itertools.permutations(messages)):
        alerts, parts = _run(tmp_path, n, order)
        kinds = [getattr(m, "kind", "") + ":" + getattr(m, "event", {}).get("id", "") for m in order]
        assert alerts == want, kinds
        for customer in ("c_a", "c_b"):
            assert parts[customer] == sorted((t, r) for (c, t), r in want.items() if c == customer), (customer, kinds)
