"""Loyalty's scheduled work: settle the accounts whose expiry, expiry notice or tier review fell due."""

from __future__ import annotations

import logging
from dataclasses import replace

from services.loyalty.handlers import Deps
from services.loyalty.handlers.accounts import settle_customer
from services.loyalty.store import from_ms
from shared.clock import iso_utc
from shared.contract.facts import epoch_ms
from shared.storage.base import OutboxMessage, is_transient
from shared.streaming.batch import BatchOutcome

log = logging.getLogger(__name__)


def run_due(*, deps: Deps, rounds: int = 20) -> BatchOutcome:
    """Settle accounts whose expiry, expiry notice or tier review fell due by now (the scheduler's tick)."""
    outcome = BatchOutcome()
    store = deps.store
    for _ in range(rounds):
        now_ms = epoch_ms(deps.clock())
        try:
            with store.transaction():
                due = store.due_accounts(now_ms, limit=deps.config.schedule_batch)
                outcome.outbox += store.outbox_add([m for c in due for m in _settle_due(c, deps=deps)])
        except Exception as exc:
            # The timer must not raise (the runner would end the worker, at every tick): find the account
            # at fault, postpone it, and settle the others.
            if is_transient(exc):
                raise
            due = _one_by_one(now_ms, deps=deps, outcome=outcome)
        outcome.processed += len(due)
        if len(due) < deps.config.schedule_batch:
            break
    return outcome


def _settle_due(customer_id: str, *, deps: Deps) -> list[OutboxMessage]:
    store = deps.store
    if store.customer_of(customer_id) == customer_id:
        return settle_customer(customer_id, deps=deps, trigger=["schedule"], changed_from=None)
    held = store.account(customer_id)  # merged away: the survivor's account carries its lots now
    if held is not None:
        store.put_account(replace(held, next_due_ms=None))
    return []


def _one_by_one(now_ms: int, *, deps: Deps, outcome: BatchOutcome) -> list[str]:
    store = deps.store
    due = store.due_accounts(now_ms, limit=deps.config.schedule_batch)
    for c in due:
        try:
            with store.transaction():
                outcome.outbox += store.outbox_add(_settle_due(c, deps=deps))
        except Exception as exc:
            if is_transient(exc):
                raise
            retry_ms = now_ms + int(deps.config.schedule_retry_s * 1000)
            log.error("loyalty: account %s could not be settled on schedule (%s); next try at %s", c,
                      type(exc).__name__, iso_utc(from_ms(retry_ms)))
            outcome.counts["schedule_failed"] += 1
            with store.transaction():
                held = store.account(c)
                if held is not None:
                    store.put_account(replace(held, next_due_ms=retry_ms))
    return due


# -- issue 12, retention (H5) ---------------------------------------------------------------------


def purge_expired(*, deps: Deps) -> dict[str, int]:
    """Purge the dead letters retention says are too old, as of the service's clock; how many."""
    from shared.storage import retention

    return {"deadletters": retention.purge_dead_letters(deps.store, now=deps.clock(), settings=deps.settings)}
