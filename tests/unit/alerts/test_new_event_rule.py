"""A new channel event that raises an alert: its rule needs no evaluator of its own (README, anatomy)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.alerts.domain import rules
from services.alerts.domain.evaluate import Trigger, evaluate
from services.alerts.domain.facts import CustomerFacts, Occurrence

Z = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 20, 12, tzinfo=Z)


def test_an_event_rule_without_an_evaluator_reads_the_occurrences_of_its_own_kind(monkeypatch):
    # What a new rule adds to domain/rules.py: its type among the event rules, and the rule itself.
    monkeypatch.setattr(rules, "EVENT_TYPES", rules.EVENT_TYPES | {"product_return"})
    monkeypatch.setitem(rules.DEFAULT_PARAMS, "product_return", {})
    rule = rules.Rule.model_construct(type="product_return", severity="yellow", action="Call about the return",
                                      window_days=30)
    old = Occurrence("product_return|pos/SH-001|r0", NOW - timedelta(days=31), "SH-001", None, "c_x")
    new = Occurrence("product_return|pos/SH-001|r1", NOW - timedelta(hours=2), "SH-001", 2, "c_x")
    facts = CustomerFacts("c_x", others={"product_return": (old, new)})
    got = evaluate(facts, [rule], NOW, Z)
    want = got.desired["product_return"]
    assert (want.severity, want.triggers) == ("yellow", (Trigger(new.key, new.at, "c_x"),))
    assert want.detail == {"occurrences": 1, "last_at": new.at.isoformat(), "value": 2}
    assert got.next_check is None
