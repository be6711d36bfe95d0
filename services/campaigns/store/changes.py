"""Campaigns' log of changes (issue 16): every write that customer facts, audiences or results read bumps it.

Kept readings (a campaign's results, part B's index of customers' facts) are valid while the store's
generation is the one they were computed at, and are brought forward by computing again only the ids logged
since (``shared.storage.changes``). One mixin for both adapters, placed first among the store's bases so that
it wraps their writes; each write is logged in the same call, inside the caller's transaction, with the record
or customer ids it touched: a purchase's or refund's record, an attribute's record, a tier's customer, the
records a mapping moved and the customers they left and joined, an owner's customer, a member's id as launched,
a touch's customer, a receipt's touch's customer, and for an erasure every id mapped to the erased customer,
the customers they belonged to and the anonymous names they now have.

The preview's index reads only customers' facts and touches, so two more logs follow just those: ``facts``
(the same ids, for purchases, refunds, attributes, tiers, mappings and erasures: not members, receipts or
owners) and ``touches`` (the campaigns whose touches were recorded, so the index reads just those campaigns'
touches: a launch over 100,000 customers would otherwise name 82,000 customers to read again).
"""

from __future__ import annotations

from collections.abc import Iterable

from services.campaigns.domain.delivery import Receipt
from services.campaigns.store import MemberRow, TouchRow
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.changes import Regroups, changes_sql
from shared.storage.membership import Membership, anonymous_names

CHANGES_LOG = "changes"  # tables (SQLite) and collections (MongoDB) changes_generation and changes_changes
FACTS_LOG = "facts"  # what the preview's index reads of customers: their ids (see ``LogsChanges``)
TOUCHES_LOG = "touches"  # the campaigns whose touches were recorded
CHANGES_SQL = changes_sql(CHANGES_LOG) + changes_sql(FACTS_LOG) + changes_sql(TOUCHES_LOG)


class LogsChanges(Regroups):
    """Wraps the writes of the campaigns store it is mixed into (which has the ``shared.storage.changes`` log)."""

    regroups_log = CHANGES_LOG  # merges, unmerges and owners (see ``Regroups``)

    def change_generation(self) -> int:
        """How many times what facts, audiences and results read has changed (0: never)."""
        return self.log_generation(CHANGES_LOG)  # type: ignore[attr-defined]

    def changed_ids(self, *, after: int, upto: int) -> set[str] | None:
        """The record and customer ids changed by generations after..upto, or None (unknown: read everything)."""
        return self.log_changes(CHANGES_LOG, after=after, upto=upto)  # type: ignore[attr-defined]

    def facts_generation(self) -> int:
        """How many times customers' facts (what the preview's index reads, touches aside) have changed."""
        return self.log_generation(FACTS_LOG)  # type: ignore[attr-defined]

    def changed_facts(self, *, after: int, upto: int) -> set[str] | None:
        """The record and customer ids whose facts changed by generations after..upto, or None (unknown)."""
        return self.log_changes(FACTS_LOG, after=after, upto=upto)  # type: ignore[attr-defined]

    def touches_generation(self) -> int:
        """How many times touches were recorded."""
        return self.log_generation(TOUCHES_LOG)  # type: ignore[attr-defined]

    def touched_campaigns(self, *, after: int, upto: int) -> set[str] | None:
        """The campaigns whose touches were recorded by generations after..upto, or None (unknown)."""
        return self.log_changes(TOUCHES_LOG, after=after, upto=upto)  # type: ignore[attr-defined]

    def _changed(self, ids: Iterable[str] | None, *, facts: bool = True) -> None:
        self.bump_log(CHANGES_LOG, ids)  # type: ignore[attr-defined]
        if facts:
            self.bump_log(FACTS_LOG, ids)  # type: ignore[attr-defined]

    def apply_memberships(self, rows: Iterable[Membership]) -> set[str]:
        """Record newer mappings (see ``Regroups``); the ids regrouped are logged as changed facts too."""
        rows = list(rows)
        touched = super().apply_memberships(rows)
        if touched:
            self.bump_log(FACTS_LOG, touched | {m.record_id for m in rows})  # type: ignore[attr-defined]
        return touched

    def add_purchases(self, facts: list[PurchaseFact]) -> None:
        """Keep purchases (see the adapter); their records are logged."""
        facts = list(facts)  # read twice: by the adapter and for the log
        super().add_purchases(facts)  # type: ignore[misc]
        if facts:
            self._changed({f.record_id for f in facts})

    def add_refunds(self, facts: list[RefundFact]) -> None:
        """Keep refunds (see the adapter); their records are logged."""
        facts = list(facts)
        super().add_refunds(facts)  # type: ignore[misc]
        if facts:
            self._changed({f.record_id for f in facts})

    def put_attributes(self, values: list[tuple[str, list[FieldValue]]]) -> None:
        """Keep newer field values (see the adapter); their records are logged."""
        values = list(values)
        super().put_attributes(values)  # type: ignore[misc]
        if any(vs for _, vs in values):
            self._changed({record for record, vs in values if vs})

    def put_tiers(self, rows: list[tuple[str, str | None, str]]) -> None:
        """Keep newer tiers (see the adapter); their customers are logged."""
        rows = list(rows)
        super().put_tiers(rows)  # type: ignore[misc]
        if rows:
            self._changed({customer for customer, _, _ in rows})

    def add_members(self, rows: list[MemberRow]) -> None:
        """Freeze audience members (see the adapter); their ids as launched are logged."""
        rows = list(rows)
        super().add_members(rows)  # type: ignore[misc]
        if rows:
            self._changed({r.member_id for r in rows}, facts=False)

    def add_touches(self, rows: list[TouchRow]) -> set[str]:
        """Record touches (see the adapter); the customers of those recorded now are logged."""
        rows = list(rows)
        fresh = super().add_touches(rows)  # type: ignore[misc]
        if fresh:
            self._changed({t.customer_id for t in rows if t.touch_id in fresh}, facts=False)
            self.bump_log(TOUCHES_LOG, {t.campaign_id for t in rows if t.touch_id in fresh})  # type: ignore[attr-defined]
        return fresh

    def add_receipts(self, rows: list[Receipt]) -> list[Receipt]:
        """Keep new receipts (see the adapter); the customers of their touches are logged."""
        fresh = super().add_receipts(rows)  # type: ignore[misc]
        if fresh:
            touches = self.touches_by_id({r.touch_id for r in fresh})  # type: ignore[attr-defined]
            # A receipt of a touch not held names no customer; its campaign's delivery figures still change.
            self._changed({t.customer_id for t in touches.values()} | {r.touch_id for r in fresh}, facts=False)
        return fresh

    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]:
        """Erase a customer (see the adapter); every id mapped to it, their customers and new names are logged."""
        before = {customer_id, *records, *self.records_of(customer_id)}  # type: ignore[attr-defined]
        owners = set(self.current_customers(sorted(before)).values())  # type: ignore[attr-defined]
        ids = super().erase_customer(customer_id, records=records, erasure_id=erasure_id, anon=anon)  # type: ignore[misc]
        renamed = anonymous_names(ids, customer_id=customer_id, anon=anon)
        self._changed({*before, *ids, *owners, *renamed.values(), *(renamed.get(o, o) for o in owners)})
        return ids
