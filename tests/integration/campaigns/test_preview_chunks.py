"""Issue 16 review (memory, issue 13's 400 MB a process): the preview's index reads customers' facts a bounded
chunk of customers at a time, when it is first built and when a launch changed most customers, so a worker never
holds every customer's facts as objects at once (at 100,000 customers a whole read peaked at 548 MB, and at
838 MB when brought forward after a launch beside the index and the kept results)."""

from __future__ import annotations

import random
from datetime import timedelta

from services.campaigns.domain.definition import Definition
from services.campaigns.handlers import commands
from services.campaigns.handlers import launch as launching
from services.campaigns.handlers import preview as fast
from tests.integration.campaigns.test_preview_index import T0, History, deps_for, planned


def test_the_index_reads_a_bounded_chunk_of_customers_at_a_time_and_counts_what_plan_counts(store, tmp_path,
                                                                                             monkeypatch):
    monkeypatch.setattr(fast, "CHUNK", 7, raising=False)
    history = History(store, random.Random(11))
    for _ in range(250):
        history.write()
    clock = [T0 + timedelta(days=25)]
    deps = deps_for(store, tmp_path, clock)
    reads: list[int | None] = []  # customers named by each read of the index (None: every customer at once)
    real = store.customer_facts

    def noted(**kw):
        if kw["as_of_ms"] == fast.EVER:
            reads.append(None if kw.get("customers") is None else len(kw["customers"]))
        return real(**kw)

    monkeypatch.setattr(store, "customer_facts", noted)
    definition = Definition(name="d", objective="promotion", channel="sms", audience={"frequency": {"min": 1}},
                            starts_at=clock[0], ends_at=clock[0] + timedelta(days=9))
    draft = commands.create(definition, by="test", idempotency_key=None, deps=deps)[0].id
    assert launching.preview(draft, deps=deps) == planned(draft, deps)
    assert reads and None not in reads and max(reads) <= 7
    other = commands.create(definition.model_copy(update={"name": "all", "audience": {}}), by="test",
                            idempotency_key=None, deps=deps)[0].id
    launching.launch(other, deps=deps)  # most customers changed at once
    history.erase()
    for _ in range(20):
        history.write()
    reads.clear()
    assert launching.preview(draft, deps=deps) == planned(draft, deps)
    assert reads and None not in reads and max(reads) <= 7
