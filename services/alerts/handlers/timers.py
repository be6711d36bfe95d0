"""The timers: the scan of due customers (also run on demand, ``POST /alerts/scan``), and the churn-model refit.

The due index holds, per customer, the next moment their alerts can change without a new fact
(a visit leaving a window, a birthday coming close, points nearing expiry, a suppression ending).
A scan evaluates only the customers due by ``as_of``, in chunks of one transaction each, so it
costs what is due rather than the whole base. The scheduler runs a scan as separate units of work,
one chunk each, so the consumer's batches interleave with it instead of waiting for the whole scan.
One worker scans at a time (a lease in the store, renewed by every unit); within SQLite, each chunk
reads its due customers inside its own write transaction, so even two scans that overlap never
evaluate a customer twice. Rules that changed (a reload, a restart with another rules file) call for
a full pass over every customer; its cursor is kept in the store, so another worker or a restart
resumes it where it stopped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.alerts.handlers import Deps
from services.alerts.handlers.evaluation import Writer
from services.alerts.reports.clv import clv_model_as_of
from shared.churn import ChurnModel
from shared.clock import iso_utc
from shared.contract.facts import epoch_ms
from shared.http.errors import InvalidInput, NotFound, Unavailable
from shared.storage.base import OutboxMessage

log = logging.getLogger(__name__)

Relay = Callable[[list[OutboxMessage]], None]
RULES_MARK = "scan.rules"  # the fingerprint of the rules every customer was last scanned with
CURSOR_MARK = "scan.full_after"  # "<fingerprint> <last customer evaluated>" of a full pass under way


@dataclass
class ScanResult:
    """What one scan did."""

    as_of: datetime
    customers: int = 0
    chunks: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    skipped: bool = False

    def add(self, unit: ScanChunk) -> None:
        """Count a unit of work in."""
        self.customers += unit.customers
        self.chunks += 1 if unit.customers else 0
        for k, n in unit.counts.items():
            self.counts[k] = self.counts.get(k, 0) + n


@dataclass
class ScanChunk:
    """One chunk of a scan, committed: what to publish, and whether more is waiting."""

    outbox: list[OutboxMessage] = field(default_factory=list)
    customers: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    more: bool = False
    full: bool = False
    skipped: bool = False


def _chunk(candidates: list[str], *, deps: Deps, as_of: datetime, more: bool, full: bool = False) -> ScanChunk:
    """Evaluate a chunk of customers inside the caller's transaction."""
    store = deps.store
    gone = store.merged_away(candidates)
    active = [c for c in candidates if c not in gone]
    # A customer merged into another is evaluated as its survivor: it leaves the due index.
    store.set_due(dict.fromkeys(gone))
    writer = Writer(deps, as_of)
    # Every active candidate gets a next check later than as_of (or none), so a due scan ends.
    writer.evaluate(active)
    return ScanChunk(store.outbox_add(writer.outbox()), len(active), dict(writer.counts), more, full)


def as_of_window(*, deps: Deps) -> tuple[datetime, datetime]:
    """The moments an on-demand scan may run as of: from the service clock minus ``scan_as_of_past_h``
    to the clock plus ``scan_as_of_future_s``."""
    now = deps.clock()
    return (now - timedelta(hours=deps.config.scan_as_of_past_h),
            now + timedelta(seconds=deps.config.scan_as_of_future_s))


def check_as_of(as_of: datetime, *, deps: Deps) -> None:
    """InvalidInput unless a scan as of ``as_of`` may change live alerts (it lies in ``as_of_window``).

    A scan as of another moment would open and resolve live alerts by a clock nobody lives on: resolved
    in the year 34, opened in 2370, and a due index pointing at moments the scheduler reaches never or
    at once."""
    earliest, latest = as_of_window(deps=deps)
    if not earliest <= as_of <= latest:
        raise InvalidInput("as_of_outside_window",
                           "as_of must lie within the scan window around the service clock",
                           details={"earliest": iso_utc(earliest), "latest": iso_utc(latest)})


def scan(as_of: datetime, *, deps: Deps, relay: Relay, full: bool = False) -> ScanResult:
    """Evaluate every customer due by ``as_of`` (or every customer, ``full``), chunk by chunk."""
    started = time.perf_counter()
    result = ScanResult(as_of)
    store, size, after = deps.store, deps.config.scan_chunk, ""
    while True:
        with store.transaction():
            if full:
                candidates = store.customers_after(after, limit=size)
            else:
                candidates = store.due_customers(until_ms=epoch_ms(as_of), limit=size)
            if not candidates:
                break
            unit = _chunk(candidates, deps=deps, as_of=as_of, more=True, full=full)
        relay(unit.outbox)
        result.add(unit)
        after = candidates[-1]
    result.seconds = time.perf_counter() - started
    return result


def scan_unit(owner: str, *, deps: Deps) -> ScanChunk:
    """One unit of the scheduler's scan as of the clock: a chunk of the full pass new rules call for,
    else a chunk of the due customers; skipped unless this worker holds (and so renews) the lease."""
    now = deps.clock()
    store, size = deps.store, deps.config.scan_chunk
    if not store.acquire_lease("scan", owner=owner, now_ms=epoch_ms(now), ttl_ms=int(deps.config.scan_lease_s * 1000)):
        return ScanChunk(skipped=True)
    deps.rules.current()
    fingerprint = deps.rules.fingerprint
    with store.transaction():
        if store.get_mark(RULES_MARK) != fingerprint:
            # New rules apply to everyone, not just the due: a full pass, resumable from its cursor.
            held, _, after = (store.get_mark(CURSOR_MARK) or "").partition(" ")
            candidates = store.customers_after(after if held == fingerprint else "", limit=size)
            if not candidates:
                store.put_mark(RULES_MARK, fingerprint)
                return ScanChunk(more=True, full=True)  # the due customers next
            store.put_mark(CURSOR_MARK, f"{fingerprint} {candidates[-1]}")
            return _chunk(candidates, deps=deps, as_of=now, more=True, full=True)
        candidates = store.due_customers(until_ms=epoch_ms(now), limit=size)
        if not candidates:
            return ScanChunk()
        return _chunk(candidates, deps=deps, as_of=now, more=len(candidates) == size)


async def scheduled_scan(owner: str, *, deps: Deps, run: Callable) -> ScanResult:
    """The scheduler's tick: ``scan_unit`` until nothing is left, each unit through ``run`` (the batch
    runner, which also relays the unit's outbox), so consumption interleaves with a long scan."""
    started = time.perf_counter()
    result = ScanResult(deps.clock())
    while True:
        unit = await run(lambda: scan_unit(owner, deps=deps))
        if unit.skipped:
            result.skipped = True
            break
        result.add(unit)
        if not unit.more:
            break
    result.seconds = time.perf_counter() - started
    if result.customers:
        log.info("alerts: scanned %d customers in %.2f s (%s)", result.customers, result.seconds,
                 ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())))
    return result


def scheduled_refit(*, deps: Deps) -> ChurnModel | None:
    """The refit timer (at start, then every ``model_check_interval_s``): BG/NBD and, beside it, Gamma-Gamma as of
    today unless both are held, so the day's first churn or CLV request does not wait for a fit; the churn model
    if this call fitted it (None while there is too little data)."""
    today = deps.clock().astimezone(deps.zone).date()
    had = deps.store.model(today) is not None
    if had and deps.store.spend_model(today) is not None:
        return None
    # One read of every customer's summary serves both fits; a request fitting the same day meanwhile is waited
    # for (deps.fitting), not repeated.
    with contextlib.suppress(NotFound, Unavailable):
        clv_model_as_of(today, deps=deps)
    held = None if had else deps.store.model(today)
    return None if held is None else held.model


# -- issue 12, retention (H5) ---------------------------------------------------------------------


def purge_expired(*, deps: Deps) -> dict[str, int]:
    """Purge the dead letters retention says are too old, as of the service's clock; how many."""
    from shared.storage import retention

    return {"deadletters": retention.purge_dead_letters(deps.store, now=deps.clock(), settings=deps.settings)}
