"""Time-based rules on time: the scan of due customers, and the churn model it uses.

The due index holds, per customer, the next moment their alerts can change without a new fact
(a visit leaving a window, a birthday coming close, points nearing expiry, a suppression ending).
A scan evaluates only the customers due by ``as_of``, in chunks of one transaction each, so it
costs what is due rather than the whole base. One worker scans at a time (a lease in the store);
within SQLite, each chunk reads its due customers inside its own write transaction, so even two
scans that overlap never evaluate a customer twice.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from services.alerts.domain.model import Standing, standings
from services.alerts.handlers import Deps, Writer
from shared.churn import ChurnModel, NotEnoughData, fit, histories
from shared.clock import iso_utc
from shared.errors import NotFound, Unavailable
from shared.facts import epoch_ms
from shared.storage import OutboxMessage

log = logging.getLogger(__name__)

Relay = Callable[[list[OutboxMessage]], None]
PENALIZERS = (0.0, 0.001, 0.01, 0.1)


@dataclass
class ScanResult:
    """What one scan did."""

    as_of: datetime
    customers: int = 0
    chunks: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    skipped: bool = False


def scan(deps: Deps, *, as_of: datetime, relay: Relay, full: bool = False) -> ScanResult:
    """Evaluate every customer due by ``as_of`` (or every customer, ``full``), chunk by chunk."""
    started = time.perf_counter()
    result = ScanResult(as_of)
    store, size, after = deps.store, deps.config.scan_chunk, ""
    while True:
        writer = Writer(deps, as_of)
        with store.transaction():
            if full:
                candidates = store.customers_after(after, limit=size)
            else:
                candidates = store.due_customers(until_ms=epoch_ms(as_of), limit=size)
            if not candidates:
                break
            gone = store.merged_away(candidates)
            active = [c for c in candidates if c not in gone]
            # A customer merged into another is evaluated as its survivor: it leaves the due index.
            store.set_due(dict.fromkeys(gone))
            # Every active candidate gets a next check later than as_of (or none), so the loop ends.
            writer.evaluate(active)
            outbox = store.outbox_add(writer.outbox())
        relay(outbox)
        for k, n in writer.counts.items():
            result.counts[k] = result.counts.get(k, 0) + n
        result.customers += len(active)
        result.chunks += 1
        after = candidates[-1]
    result.seconds = time.perf_counter() - started
    return result


def scheduled_scan(deps: Deps, *, owner: str, relay: Relay) -> ScanResult:
    """The scheduler's tick: scan as of the clock if this worker holds the scan lease."""
    now = deps.clock()
    ttl = int(deps.config.scan_lease_s * 1000)
    if not deps.store.acquire_lease("scan", owner=owner, now_ms=epoch_ms(now), ttl_ms=ttl):
        return ScanResult(now, skipped=True)
    deps.rules.current()
    # New rules apply to everyone, not just the due: the first scan after a reload looks at every customer.
    full = deps.rules.generation != deps.scanned_rules
    result = scan(deps, as_of=now, relay=relay, full=full)
    deps.scanned_rules = deps.rules.generation
    if result.customers:
        log.info("alerts: scanned %d customers in %.2f s (%s)", result.customers, result.seconds,
                 ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())))
    return result


# -- the churn model -------------------------------------------------------------------------


def fit_model(deps: Deps, as_of: date) -> ChurnModel:
    """Fit BG/NBD on every customer's purchase days up to ``as_of`` and keep it; NotFound without data."""
    from lifetimes.utils import ConvergenceError

    rows = histories(deps.store.purchase_days(until=as_of), as_of)
    # Maximum likelihood as in the paper first; a customer base the optimiser cannot fit unpenalised
    # gets the smallest L2 penalty that converges, rather than no model at all.
    for penalizer in PENALIZERS:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # lifetimes prints the optimiser's output on failure
                model = fit(rows, as_of, penalizer=penalizer)
            break
        except NotEnoughData as exc:
            raise NotFound("not_enough_data", str(exc)) from None
        except ConvergenceError:
            log.warning("alerts: churn model did not converge with penalizer %s", penalizer)
    else:
        raise Unavailable("model_did_not_converge", "the churn model did not converge on this purchase history")
    with deps.store.transaction():
        deps.store.put_model(model, fitted_at=iso_utc(deps.clock()))
    return model


def model_as_of(deps: Deps, as_of: date) -> tuple[ChurnModel, str]:
    """The model fitted as of a date: the cached fit, or a new one."""
    held = deps.store.model(as_of)
    if held is None:
        fit_model(deps, as_of)
        held = deps.store.model(as_of)
        assert held is not None
    return held.model, held.fitted_at


def scheduled_refit(deps: Deps) -> ChurnModel | None:
    """The refit timer: a model as of today unless one is held (None while there is too little data)."""
    today = deps.clock().astimezone(deps.zone).date()
    if deps.store.model(today) is not None:
        return None
    try:
        return fit_model(deps, today)
    except (NotFound, Unavailable):
        return None


def ranked(deps: Deps, as_of: date, *, weeks: float,
           customer_id: str | None = None) -> tuple[ChurnModel, list[Standing]]:
    """Customers under the model as of a date, most likely lost first (or just one customer)."""
    model, _ = model_as_of(deps, as_of)
    if customer_id is not None:
        survivor = deps.store.customer_of(customer_id)
        days = deps.store.purchase_days(until=as_of, customer_id=survivor)
        rows = standings(model, days, as_of, weeks)
        if not rows:
            raise NotFound("customer_not_found", "no purchases of that customer by that date")
        return model, rows
    rows = standings(model, deps.store.purchase_days(until=as_of), as_of, weeks)
    rows.sort(key=lambda s: (s.p_alive, -s.expected, s.customer_id))
    return model, rows
