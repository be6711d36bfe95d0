"""The record-to-customer mapping every downstream service keeps (``SqliteMembership``,
``MongoMembership``): last writer wins by identity's time, so any arrival order ends the same."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.contract.messages import CustomerEventResolved, CustomerMerged
from shared.storage.membership import MEMBERSHIP_SQL, Membership, MongoMembership, SqliteMembership, memberships_of
from shared.storage.outbox import MongoStore, SqliteStore
from tests.integration.shared.backends import BACKENDS, mongo_db, sqlite_file


class SqliteMap(SqliteMembership, SqliteStore):
    schema = MEMBERSHIP_SQL

    def forget_all(self) -> None:
        self.db.conn().execute("DELETE FROM memberships")


class MongoMap(MongoMembership, MongoStore):
    def create_indexes(self) -> None:
        self.create_membership_indexes()

    def forget_all(self) -> None:
        self.mdb["memberships"].delete_many({})


@pytest.fixture(params=BACKENDS)
def mapping(request, tmp_path):
    if request.param == "sqlite":
        m = SqliteMap(sqlite_file(tmp_path, "members"))
        yield m
        m.db.close()
        return
    with mongo_db(request.param) as mdb:
        yield MongoMap(mdb)


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _at(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


def _apply(mapping, message) -> set[str]:
    with mapping.transaction():
        return mapping.apply_memberships(memberships_of(message))


def test_apply_returns_the_customers_whose_records_changed_and_ignores_older_news(mapping):
    rows = lambda *r: [Membership(*x) for x in r]  # noqa: E731
    with mapping.transaction():
        assert mapping.apply_memberships(rows(("r1", "c1", "T2"), ("r2", "c1", "T2"))) == {"c1"}
        assert mapping.apply_memberships(rows(("r1", "c1", "T3"))) == set()  # newer, same customer
        assert mapping.apply_memberships(rows(("r1", "c2", "T1"))) == set()  # older: ignored
        assert mapping.apply_memberships(rows(("r1", "c2", "T4"))) == {"c1", "c2"}
        assert mapping.apply_memberships([]) == set()
    assert mapping.customer_of("r1") == "c2"
    assert mapping.customer_of("r2") == "c1"
    assert mapping.customer_of("r_unknown") == "r_unknown"
    assert mapping.records_of("c1") == ["c1", "r2"]
    assert mapping.records_of("c2") == ["c2", "r1"]
    assert mapping.records_of("c_unknown") == ["c_unknown"]


def _history(p: str) -> tuple[list, dict[str, str]]:
    """Identity's messages about provisional records W and Q and phone customer C, in the order identity
    sent them, and the mapping they leave: Q joins W, W (with Q) joins C, then that merge is undone."""
    c, w, q = f"{p}c", f"{p}w", f"{p}q"
    messages = [
        CustomerEventResolved(customer_id=w, record_id=w, event={}, resolved_at=_at(1)),
        CustomerEventResolved(customer_id=c, record_id=c, event={}, resolved_at=_at(2)),
        CustomerMerged(kind="customer.merged", merge_id="m1", survivor_id=w, merged_id=q, records=[q], at=_at(3)),
        CustomerMerged(kind="customer.merged", merge_id="m2", survivor_id=c, merged_id=w, records=[q, w], at=_at(4)),
        CustomerEventResolved(customer_id=c, record_id=q, event={}, resolved_at=_at(5)),
        CustomerMerged(kind="customer.unmerged", merge_id="m2", survivor_id=c, merged_id=w, records=[q, w],
                       at=_at(6)),
    ]
    return messages, {c: c, w: w, q: w}


def _state(mapping, expected: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    owners = {r: mapping.customer_of(r) for r in expected}
    return owners, {cust: mapping.records_of(cust) for cust in set(expected.values())}


def test_any_arrival_order_of_events_merges_and_unmerges_gives_the_same_mapping(mapping):
    messages, want = _history("")
    for order in itertools.permutations(range(len(messages))):  # all 720
        mapping.forget_all()
        for i in order:
            _apply(mapping, messages[i])
        assert _state(mapping, want) == (want, {"c": ["c"], "w": ["w", "q"]}), order


def test_a_merge_arriving_before_the_events_it_concerns_still_wins(mapping):
    messages, _ = _history("y-")
    merge, late_event = messages[3], messages[0]  # W joined C; W's own first event arrives after that
    assert _apply(mapping, merge) == {"y-c"}
    assert _apply(mapping, late_event) == set()
    assert mapping.records_of("y-c") == ["y-c", "y-q", "y-w"]
    assert mapping.records_of("y-w") == ["y-w"]  # a merged-away id answers with itself alone
    assert _apply(mapping, messages[5]) == {"y-c", "y-w"}
    assert mapping.records_of("y-w") == ["y-w", "y-q"]
    assert mapping.records_of("y-c") == ["y-c"]


def test_runs_applied_in_one_call_change_what_each_run_alone_would_change_in_turn(mapping):
    """Issue 13: loyalty applies a batch's memberships in one call, one run per message; each run's changed
    customers and the mapping left are those of one ``apply_memberships`` per run, in batch order."""
    rng = random.Random(13)
    records, customers = [f"rr{i}" for i in range(6)], [f"rc{i}" for i in range(4)]
    for trial in range(40):
        held = [Membership(r, rng.choice(customers), f"T{rng.randint(10, 30)}") for r in rng.sample(records, 3)]
        runs = [[Membership(rng.choice(records), rng.choice(customers), f"T{rng.randint(10, 40)}")
                 for _ in range(rng.randint(0, 4))] for _ in range(rng.randint(1, 8))]
        mapping.forget_all()
        with mapping.transaction():
            mapping.apply_memberships(held)
            one_by_one = [mapping.apply_memberships(run) for run in runs]
        after = {r: mapping.customer_of(r) for r in records}, {c: mapping.records_of(c) for c in customers}
        mapping.forget_all()
        with mapping.transaction():
            mapping.apply_memberships(held)
            assert mapping.apply_membership_runs(runs) == one_by_one, trial
        assert ({r: mapping.customer_of(r) for r in records}, {c: mapping.records_of(c) for c in customers}) == after
    with mapping.transaction():
        assert mapping.apply_membership_runs([]) == []
        assert mapping.apply_membership_runs([[], []]) == [set(), set()]


def test_runs_keep_the_newest_mapping_and_name_both_customers_of_a_move(mapping):
    rows = lambda *r: [Membership(*x) for x in r]  # noqa: E731
    with mapping.transaction():
        assert mapping.apply_membership_runs([
            rows(("s1", "d1", "T2"), ("s2", "d1", "T2")),  # new: d1 changed
            rows(("s1", "d1", "T3")),  # newer, same customer: nothing changed
            rows(("s1", "d2", "T1")),  # older than what the first run wrote: ignored
            rows(("s1", "d2", "T4")),  # moved: both
        ]) == [{"d1"}, set(), set(), {"d1", "d2"}]
    assert mapping.records_of("d1") == ["d1", "s2"]
    assert mapping.records_of("d2") == ["d2", "s1"]
