"""How loyalty, alerts and campaigns take an erasure (issue 12): ``CustomerErased`` is a barrier in a
batch (what came before it is applied first, so nothing of the customer is written after it), each
service erases its part through its store and confirms with ``ErasureConfirmed`` on its own topic, and
every later message about an erased id is dropped (counted ``erased``), so a late or replayed one cannot
bring the person back."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from shared.clock import Clock
from shared.contract.messages import CustomerErased, ErasureConfirmed, Read
from shared.settings import Settings
from shared.storage.base import ANON_PREFIX, OutboxMessage
from shared.storage.crypto import KeyRing
from shared.streaming.batch import BatchOutcome, Decoded, Incoming, message_span, process_batch
from shared.streaming.outbox import outbox_message

_ID_FIELDS = ("customer_id", "record_id", "survivor_id", "merged_id")


Run = Callable[..., list[OutboxMessage]]  # (items: list[Decoded[Read]], *, deps, outcome: BatchOutcome)


class ErasingStore(Protocol):
    """What a downstream store offers for erasure (besides the outbox's ``forget_messages``)."""

    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]: ...
    def erased_ids(self, ids: list[str]) -> set[str]: ...
    def forget_messages(self, *, keys: list[str], needles: list[str]) -> int: ...
    def scrub(self) -> None: ...

    @property
    def keys(self) -> KeyRing: ...


def anonymous_id(erasure_id: str, service: str) -> str:
    """The id an erased customer's kept facts are filed under: linked to no person, and to no other
    service's copy of them."""
    return ANON_PREFIX + hashlib.sha256(f"{service}\0{erasure_id}".encode()).hexdigest()[:16]


def ids_of(message: Any) -> set[str]:
    """Every customer or record id a message names."""
    # The model's fields read directly: ``getattr`` of a field a model lacks costs pydantic's ``__getattr__``,
    # several times per message of every batch. (A kind this version does not know reads as None.)
    fields = getattr(message, "__dict__", {})
    out = {v for f in _ID_FIELDS if isinstance(v := fields.get(f), str)}
    return out | set(fields.get("records") or ())


def runs(items: list[Decoded[Read]]) -> Iterator[tuple[list[Decoded[Read]], list[Decoded[Read]]]]:
    """The batch cut at each run of erasures: (the messages before it, the erasures), in order."""
    before: list[Decoded[Read]] = []
    erasures: list[Decoded[Read]] = []
    for one in items:
        if isinstance(one.item.message, CustomerErased):
            erasures.append(one)
            continue
        if erasures:
            yield before, erasures
            before, erasures = [], []
        before.append(one)
    yield before, erasures


def without_erased(items: list[Decoded[Read]], *, store: ErasingStore,
                   outcome: BatchOutcome) -> list[Decoded[Read]]:
    """The messages that name no erased customer or record (the others are counted ``erased``)."""
    named = [ids_of(one.item.message) for one in items]
    erased = store.erased_ids(sorted({i for ids in named for i in ids})) if items else set()
    if not erased:
        return items
    kept = [one for one, ids in zip(items, named, strict=True) if erased.isdisjoint(ids)]
    outcome.counts["erased"] += len(items) - len(kept)
    return kept


def dispatch_with_erasures(items: list[Decoded[Read]], *, store: ErasingStore, outcome: BatchOutcome,
                           apply: Callable[[list[Decoded[Read]]], list[OutboxMessage]],
                           erase: Callable[[list[Decoded[Read]]], list[OutboxMessage]]) -> list[OutboxMessage]:
    """Apply a batch by ``apply`` with each run of erasures, by ``erase``, in its place: the messages before
    it applied first, then the customers erased and what the batch was about to publish about them
    withdrawn. Messages naming an already erased id are dropped."""
    out: list[OutboxMessage] = []
    for before, erasures in runs(items):
        if kept := without_erased(before, store=store, outcome=outcome):
            out += apply(kept)
        if erasures:
            confirmations = erase(erasures)
            gone = store.erased_ids(sorted({(m.key or b"").decode("latin-1") for m in out}))
            out = [m for m in out if (m.key or b"").decode("latin-1") not in gone] + confirmations
    return out


def erase_each(items: list[Decoded[Read]], *, service: str, store: ErasingStore, settings: Settings, topic: str,
               clock: Clock, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Erase each customer through the store (again changes nothing, and confirms again); returns the
    confirmations to publish on the service's ``topic``."""
    out: list[OutboxMessage] = []
    for one in items:
        m: CustomerErased = one.item.message
        with message_span(service, one.msg, {"crm.customer_id": m.customer_id, "crm.erasure_id": m.erasure_id}):
            ids = store.erase_customer(m.customer_id, records=list(m.records), erasure_id=m.erasure_id,
                                       anon=anonymous_id(m.erasure_id, service))
            # Crypto-shredding: the data keys of every record go, so sealed copies anywhere stay unreadable.
            for key_id in sorted({*ids, *m.records, m.customer_id}):
                store.keys.shred(key_id)
            store.forget_messages(keys=ids, needles=[f'"{i}"' for i in ids])
            body = ErasureConfirmed(erasure_id=m.erasure_id, service=service, at=clock())
            out.append(outbox_message(settings, topic, m.customer_id, body))
        outcome.processed += 1
        outcome.counts["erasures"] += 1
    return out


def scrub_after(outcome: BatchOutcome, store: ErasingStore) -> BatchOutcome:
    """Once a batch that erased someone has committed, clear the store's log of their old copies."""
    if outcome.counts.get("erasures"):
        store.scrub()
    return outcome


class ErasingDeps(Protocol):
    """What :func:`consume_with_erasures` reads of a downstream service's ``Deps``."""

    store: ErasingStore
    settings: Settings
    clock: Clock


def consume_with_erasures(batch: list[Incoming], *, deps: ErasingDeps, service: str,
                          decode: Callable[[Incoming], Read], dispatch: Run, erase: Run,
                          finish: Callable[..., list[OutboxMessage]] | None = None) -> BatchOutcome:
    """A downstream service's consume: the batch decoded by ``decode`` and applied in one transaction by
    ``dispatch``, each run of erasures taken by ``erase`` as a barrier (see :func:`dispatch_with_erasures`);
    once it committed, the erased customers' old copies scrubbed. ``dispatch`` and ``erase`` are handlers
    ``(items, *, deps, outcome)``; ``finish(*, deps, outcome)``, if given, ends each transaction after its
    last run (what it announces must leave out the customers erased meanwhile)."""
    def apply(items: list[Decoded[Read]], outcome: BatchOutcome) -> list[OutboxMessage]:
        out = dispatch_with_erasures(items, store=deps.store, outcome=outcome,
                                     apply=lambda run: dispatch(run, deps=deps, outcome=outcome),
                                     erase=lambda run: erase(run, deps=deps, outcome=outcome))
        return out + finish(deps=deps, outcome=outcome) if finish is not None else out

    outcome = process_batch(batch, store=deps.store, service=service, prefix=deps.settings.topic_prefix,
                            clock=deps.clock, decode=decode, apply=apply)
    return scrub_after(outcome, deps.store)
