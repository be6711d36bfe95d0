"""Issue 16 review, PIPL: once campaigns has applied an erasure, nothing it keeps in the process's memory names the
erased customer, also what nobody reads again: a store manager's kept results of a campaign (each member's launch
row and customer id), the whole campaign's, and the preview's index of every customer's facts."""

from __future__ import annotations

import dataclasses
import random
import threading
from datetime import timedelta

from services.campaigns.domain.definition import Definition
from services.campaigns.handlers import commands, reports
from services.campaigns.handlers import launch as launching
from services.campaigns.handlers import preview as fast
from services.campaigns.messages import consume
from shared.contract.messages import CustomerErased
from shared.kept import Kept, kept_for
from tests.integration.campaigns.test_preview_index import planned
from tests.integration.campaigns.test_results_kept import NOW, History, measured_afresh
from tests.unit.campaigns import factory as f


def names(value, needle: str, seen: set[int] | None = None) -> bool:
    """Whether ``needle`` appears anywhere in a kept value (keys, fields, items), by a walk of its objects."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, str):
        return value == needle
    if isinstance(value, dict):
        return any(names(k, needle, seen) or names(v, needle, seen) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(names(v, needle, seen) for v in value)
    if dataclasses.is_dataclass(value):
        return any(names(getattr(value, x.name), needle, seen) for x in dataclasses.fields(value))
    return False


def test_after_an_erasure_nothing_kept_in_the_process_names_the_erased_customer(store, tmp_path):
    history = History(store, tmp_path, random.Random(4))
    deps = history.deps
    campaign = history.launch("spring", follow_up=False)
    erased = next(c for c in history.customers() if store.members(campaign) and
                  any(m.member_id == c for m in store.members(campaign)))
    home = store.owners_of([erased])[erased]
    reports.results(campaign, deps=deps)  # the whole campaign's, kept
    reports.results(campaign, deps=deps, owned_by=frozenset({home}))  # a store manager's, read once, never again
    draft = commands.create(Definition(name="d", objective="promotion", channel="sms", starts_at=NOW,
                                       ends_at=NOW + timedelta(days=9)), by="test", idempotency_key=None,
                            deps=deps)[0].id
    launching.preview(draft, deps=deps)  # the index holds every customer
    kept, index = kept_for(store), fast.index_for(store)
    assert any(names(v, erased) for _, v in kept.items()) and erased in index.pos  # held while the customer is

    records = sorted(r for r, c in history.records.items() if c == erased)
    outcome = consume([f.incoming(CustomerErased(erasure_id="er_k1", customer_id=erased, records=records,
                                                 at=NOW))], deps=deps)
    assert outcome.counts["erasures"] == 1

    # No read since: what is kept names neither the customer nor any of its records.
    assert kept._dropped == []  # no computation was under way: the drop itself keeps nothing of the erased
    for gone in {erased, *records}:
        assert not any(names(v, gone) for _, v in kept.items())
        assert gone not in index.pos and gone not in index.ids
    # The next reads measure again from the store, exactly.
    for scope in (None, frozenset({home})):
        assert reports.results(campaign, deps=deps, owned_by=scope).report == measured_afresh(
            store, campaign, attribution=deps.config.attribution, owned_by=scope)
    assert launching.preview(draft, deps=deps) == planned(draft, deps)
    assert erased not in fast.index_for(store).pos

def test_a_report_computed_before_a_drop_of_what_it_names_is_answered_but_not_kept():
    kept = Kept()
    started, go = threading.Event(), threading.Event()
    result: list = []

    def slow() -> list[str]:
        started.set()
        go.wait(5)
        return ["c_erased", "c_other"]

    reader = threading.Thread(target=lambda: result.append(kept.get("k", 7, slow)))
    reader.start()
    assert started.wait(5)
    # The erasure commits at generation 8 while the reader still computes from what it read at 7.
    assert kept.drop(lambda value: "c_erased" in value, generation=8) == 0
    go.set()
    reader.join(5)
    assert result == [["c_erased", "c_other"]]  # the reader is answered
    assert kept.items() == []  # but nothing naming the erased is kept
    assert kept._dropped == []  # nor what was dropped, once no computation is under way
    assert kept.get("k", 8, lambda: ["c_other"]) == ["c_other"] and kept.items() == [("k", ["c_other"])]
