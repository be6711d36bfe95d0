"""Outbox messages: built here, and a large outbox (a launch's touches, grants and view parts; a
cancellation's withdrawals) relayed under a lease.

The rows are leased to their relay in the transaction that writes them (``store.leases``), so the
shared sweeper, which resends rows older than 15 s, never sends them while the relay is at work:
no touch reaches a customer twice because a launch took long to relay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from services.campaigns.handlers import Deps
from shared.observability.trace_context import inject_headers
from shared.storage.base import OutboxMessage
from shared.streaming.outbox import outbox_message as shared_outbox_message

log = logging.getLogger(__name__)


def outbox_message(deps: Deps, topic: str, key: str, body, headers: list | None = None) -> OutboxMessage:
    """A message for the outbox, keyed by the customer's pseudonymous id."""
    return shared_outbox_message(deps.settings, topic, key, body,
                                 headers=headers if headers is not None else inject_headers())


def chunks(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class Leased:
    """Outbox messages committed together and the lease their relay holds on them."""

    outbox: list[OutboxMessage] = field(default_factory=list)
    lease_id: str | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


def lease(messages: list[OutboxMessage], *, deps: Deps) -> Leased:
    """Add messages to the outbox and lease them to the caller's relay (inside the caller's transaction)."""
    # Added a relay chunk at a time: the rows of a launch's 100,000s of messages (sealed copies of each value)
    # built at once would take 100 MB (issue 13: 400 MB a process). One transaction still holds them all.
    queued = [m for part in chunks(messages, deps.config.relay_chunk) for m in deps.store.outbox_add(part)]
    if not queued:
        return Leased()
    until = _now_ms() + int(deps.config.relay_lease_s * 1000)
    return Leased(queued, deps.store.outbox_lease(queued, until_ms=until))


def relay_leased(sent: Leased, *, deps: Deps, relay: Callable[[list[OutboxMessage]], None]) -> int:
    """Publish leased messages a chunk at a time, renewing the lease before each; returns how many went.

    A chunk leaves the outbox as soon as the broker has it. The lease outlasts the longest a chunk can
    take (publish and delete retries), so it cannot run out while a chunk is on its way; if it has run
    out anyway (this relay stalled), the sweeper owns the rest and this relay stops. The lease is
    released at the end, also on failure, so the sweeper picks up what is left at once.
    """
    store, done = deps.store, 0
    lease_ms = int(deps.config.relay_lease_s * 1000)
    try:
        for part in chunks(sent.outbox, deps.config.relay_chunk):
            now = _now_ms()
            if sent.lease_id is not None and not store.outbox_renew(sent.lease_id, now_ms=now, until_ms=now + lease_ms):
                log.warning("campaigns: relay lease ran out after %d of %d messages; the sweeper sends the rest",
                            done, len(sent.outbox))
                break
            relay(part)
            done += len(part)
    finally:
        if sent.lease_id is not None:
            store.outbox_release(sent.lease_id)
    return done
