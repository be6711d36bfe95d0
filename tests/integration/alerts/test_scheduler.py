"""The scheduler: due times to the millisecond, scans in units of work that consumption can interleave
with, a full scan after a rules change (also across restarts), resumed where a dead worker left it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.alerts.handlers import timers
from shared.contract.messages import ViewPartUpdated
from tests.integration.alerts.harness import Harness

Z = ZoneInfo("Asia/Shanghai")


def noon(d: str) -> datetime:
    return datetime.combine(date.fromisoformat(d), time(12), Z)


def balance(customer: str, points: int, version: str = "000000000001") -> ViewPartUpdated:
    return ViewPartUpdated(customer_id=customer, part="loyalty", value={"points_balance": points, "tier": None},
                           version=version)


@pytest.mark.timeout(60)
def test_a_scan_inside_the_millisecond_before_a_due_time_ends_and_the_next_one_fires_it(tmp_path):
    # Resolved 700 µs past noon: the 30-day suppression of large_balance ends 700 µs past noon, 30 days on.
    h = Harness(tmp_path, noon("2026-11-20") + timedelta(microseconds=700))
    h.feed(balance("c_ms", 6000))
    [alert] = h.alerts()
    h.api.post(f"/v1/alerts/{alert['alert_id']}/resolve", json={"note": "offered a gift set"})
    until = h.now + timedelta(days=30)
    # 500 µs before the end, in the same millisecond: not due yet (a due time truncated to the millisecond
    # made this scan find the customer due, unchanged, again and again, for ever).
    early = timers.scan(until - timedelta(microseconds=500), deps=h.service.deps, relay=h.service.relay)
    assert early.customers == 0 and h.open_types("c_ms") == {}
    # Due at the first millisecond boundary at or after the moment (12:00:00.001 here).
    assert timers.scan(until, deps=h.service.deps, relay=h.service.relay).customers == 0
    assert timers.scan(until + timedelta(microseconds=300), deps=h.service.deps, relay=h.service.relay).customers == 1
    assert list(h.open_types("c_ms")) == ["large_balance"]


def test_the_scheduler_scans_on_one_worker_at_a_time_and_everyone_after_a_rules_reload(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text("[]")
    h = Harness(tmp_path, noon("2026-11-20"), rules_file=str(path), scan_lease_s=120)
    h.feed(*(balance(f"c_{i}", 500 * i) for i in range(1, 4)))
    assert h.alerts() == []
    # The first tick ever passes over everyone once (nothing says which rules they were scanned with).
    first = h.tick("worker-1")
    assert not first.skipped and first.customers == 3 and h.alerts() == []
    assert h.tick("worker-1").customers == 0  # a balance has no due time: nobody to look at
    assert h.tick("worker-2").skipped  # the lease is worker-1's
    path.write_text('[{"type": "large_balance", "params": {"min_points": 1000}}]')
    h.advance(seconds=60)
    assert h.tick("worker-1").customers == 3
    assert sorted(a["customer_id"] for a in h.alerts(type="large_balance")) == ["c_2", "c_3"]
    h.advance(seconds=121)  # worker-1 stopped renewing: its lease lapsed
    later = h.tick("worker-2")
    assert not later.skipped and later.customers == 0  # the new rules were scanned with already, by worker-1


def test_a_restart_with_another_rules_file_scans_everyone_with_the_new_rules(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text("[]")
    h = Harness(tmp_path, noon("2026-11-20"), rules_file=str(path))
    h.feed(*(balance(f"c_{i}", 500 * i) for i in range(1, 4)))
    h.tick()
    assert h.alerts() == [] and h.tick().customers == 0
    # The operator edits the rules while the service is down; the restarted service reads them at start.
    path.write_text('[{"type": "large_balance", "params": {"min_points": 1000}}]')
    restarted = Harness(tmp_path, noon("2026-11-20") + timedelta(minutes=5), rules_file=str(path))
    assert restarted.tick().customers == 3
    assert sorted(a["customer_id"] for a in restarted.alerts(type="large_balance")) == ["c_2", "c_3"]


def test_a_full_pass_is_resumed_where_a_dead_worker_left_it_and_no_customer_is_evaluated_twice(tmp_path):
    h = Harness(tmp_path, noon("2026-11-20"), scan_chunk=3, scan_lease_s=120)
    h.feed(*(balance(f"c_{i}", 6000 + i) for i in range(7)))  # each raises large_balance on consumption
    h.take()
    deps = h.service.deps
    first, second = (timers.scan_unit("worker-1", deps=deps) for _ in range(2))
    assert (first.customers, second.customers, first.full, second.more) == (3, 3, True, True)
    # worker-1 dies here; after its lease lapses, worker-2 (a new process) carries on from c_5.
    other = Harness(tmp_path, noon("2026-11-20") + timedelta(seconds=121), scan_chunk=3)
    rest = other.tick("worker-2")
    assert rest.customers == 1 and rest.counts.get("evaluated") == 1
    assert other.tick("worker-2").customers == 0
    assert len(other.alerts(type="large_balance", status="open")) == 7  # still one each, nothing raised twice


def test_consumption_interleaves_with_a_long_scan_one_chunk_at_a_time(tmp_path, monkeypatch):
    """The scan goes through the batch runner one chunk per unit of work, so a batch consumed meanwhile
    waits for one chunk at most (it was one unit for the whole scan: tens of seconds at 100,000 customers)."""
    import asyncio

    from services.alerts.agents import scan_tick
    from services.alerts.messages import consume as consume_messages
    from shared.contract import topics
    from shared.contract.messages import encode
    from shared.streaming.batch import Incoming

    h = Harness(tmp_path, noon("2026-11-20"), scan_chunk=2)
    h.feed(*(balance(f"c_{i}", 100) for i in range(6)))
    order: list[str] = []
    unit = timers.scan_unit

    def counted_unit(owner, *, deps):
        done = unit(owner, deps=deps)
        order.append(f"scan:{done.customers}")
        return done

    def consume(batch):
        order.append("batch")
        return consume_messages(batch, deps=h.service.deps)

    async def main():
        ticking = asyncio.create_task(scan_tick(h.service, owner="worker-1"))
        await asyncio.sleep(0)  # the tick submits its first unit to the batch thread
        batch = [Incoming(encode(balance("c_0", 7000, "000000000002")), topics.LOYALTY_EVENTS, 0, 99)]
        outcome = await h.service.runner.run(consume, batch)
        return outcome, await ticking

    monkeypatch.setattr(timers, "scan_unit", counted_unit)
    outcome, result = asyncio.run(main())
    assert order == ["scan:2", "batch", "scan:2", "scan:2", "scan:0", "scan:0"]
    assert outcome.processed == 1 and result.customers == 6
    assert [a["customer_id"] for a in h.alerts(type="large_balance")] == ["c_0"]


def test_the_daily_refit_runs_outside_the_batch_thread(tmp_path, monkeypatch):
    """A fit over the whole base takes seconds: it must not hold consumption back."""
    import asyncio

    from services.alerts.agents import refit_tick
    from shared.streaming.consumer import BatchRunner
    from tests.integration.alerts.harness import purchase

    h = Harness(tmp_path, noon("2026-11-20"))
    days = ["2026-09-01", "2026-09-20", "2026-10-05", "2026-10-30", "2026-11-10"]
    h.feed(*(purchase(f"c_{n}", f"p{n}-{k}", noon(d)) for n in range(12) for k, d in enumerate(days[: 2 + n % 4])))

    def occupied(*_args, **_kw):
        raise AssertionError("the refit went through the batch runner")

    monkeypatch.setattr(BatchRunner, "run", occupied)
    asyncio.run(refit_tick(h.service))
    held = h.store.model(date(2026, 11, 20))
    # 2, 3, 4 and 5 purchase days, three customers each: 1 + 2 + 3 + 4 repeat days per three customers.
    assert held is not None and (held.model.customers, held.model.repeat_purchases) == (12, 3 * (1 + 2 + 3 + 4))
