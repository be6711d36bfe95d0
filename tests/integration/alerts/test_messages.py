"""The table in ``messages.py``: a batch goes to the handler of each kind in it, and is evaluated once.

The kinds alerts reads, one with no rule, and one for another service arrive in one batch with a merge after
them: each is counted for what it is, and the customers are evaluated after the merge, as one person.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.alerts.config import AlertsConfig, RulesInForce
from services.alerts.handlers import Deps
from services.alerts.messages import consume
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract import topics
from shared.contract.messages import AlertChanged, CustomerMerged, decode, encode
from shared.settings import Settings
from shared.streaming.batch import Incoming
from tests.integration.alerts.harness import channel, complaint

Z = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 12, tzinfo=Z)
T = NOW - timedelta(hours=6)


def test_a_batch_goes_to_each_kinds_handler_and_is_evaluated_once_after_its_merges(tmp_path):
    store = SqliteAlertsStore(tmp_path / "alerts.db")
    deps = Deps(store=store, settings=Settings(_env_file=None), config=AlertsConfig(_env_file=None),
                rules=RulesInForce(), clock=lambda: NOW)
    batch = [
        complaint("c_b", "x1", T),
        channel("c_b", "crm.page_view", "pv1", T, {"url": "https://shop.example/menu"}),  # no rule reads it
        AlertChanged(alert_id="al_x", customer_id="c_b", type="complaint", severity="red", status="open", at=T),
        complaint("c_b", "x1", T),  # the same event again
        CustomerMerged(kind="customer.merged", merge_id="m1", survivor_id="c_a", merged_id="c_b", records=["c_b"],
                       at=T + timedelta(hours=1)),
    ]
    outcome = consume([Incoming(encode(m), topics.CUSTOMER_EVENTS, 0, i) for i, m in enumerate(batch)], deps=deps)
    assert (outcome.processed, outcome.duplicates, outcome.counts["ignored"]) == (2, 1, 2)
    assert outcome.counts["evaluated"] == 1
    # Evaluated after the merge: the complaint's alert is the survivor's, raised once, for the record it came from.
    [alert] = store.active_alerts(["c_a", "c_b"])
    assert (alert.customer_id, alert.type, alert.origin_id, alert.repeats) == ("c_a", "complaint", "c_b", 0)
    announced = [decode(m.value) for m in outcome.outbox]
    assert [(m.kind, m.customer_id) for m in announced] == [("alert.changed", "c_a"), ("view.part", "c_a")]
