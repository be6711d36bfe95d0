"""What loyalty needs from storage: a Protocol and the rows it speaks in (adapters: ``sqlite``, ``mongo``).

Facts are kept per identity record (purchases, refunds, campaign bonuses) beside the record ->
customer mapping; the ledger's entries each belong to a record too, so a customer's ledger is the
entries of its records and merges and unmerges need no rewriting.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from services.loyalty.domain.model import Bonus, Entry, Posted, Purchase, Refund, TierImport
from shared.storage.crypto import SERVICE, KeyRing
from shared.storage.membership import Membership
from shared.storage.outbox import OutboxStore
from shared.storage.owners import OwnerRow

# Staff notes are free text (a customer's name or phone written down): sealed at rest under the service's own
# key, in both adapters, as alerts seals its notes. Rows written before are read as they are.
NOTE_FIELDS = ("reason", "note")


def seal_cause(cause: dict[str, Any], keys: KeyRing) -> dict[str, Any]:
    """A ledger entry's cause with its staff notes sealed."""
    return {k: keys.seal(SERVICE, f"loyalty.cause.{k}", v) if k in NOTE_FIELDS and isinstance(v, str) else v
            for k, v in cause.items()}


def open_cause(cause: dict[str, Any], keys: KeyRing) -> dict[str, Any]:
    """A stored cause with its staff notes opened."""
    return {k: keys.open(SERVICE, f"loyalty.cause.{k}", v) if k in NOTE_FIELDS and isinstance(v, str) else v
            for k, v in cause.items()}


def seal_note(keys: KeyRing, field_name: str, text: str | None) -> str | None:
    """A staff note (cancellation reason) or stored answer sealed under the service's key."""
    return keys.seal(SERVICE, f"loyalty.{field_name}", text)


def open_note(keys: KeyRing, field_name: str, token: str | None) -> str | None:
    """What :func:`seal_note` sealed (a value written before sealing as it is)."""
    return keys.open(SERVICE, f"loyalty.{field_name}", token)


def opened_redemption(row: RedemptionRow, keys: KeyRing) -> RedemptionRow:
    """A stored redemption with its cancellation reason opened."""
    return replace(row, cancel_reason=open_note(keys, "cancel_reason", row.cancel_reason)) if row.cancel_reason else row


def from_ms(ms: int) -> datetime:
    """An aware UTC datetime from epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class AccountRow:
    """A customer's account as last settled: a snapshot of the ledger and of what was published."""

    customer_id: str
    balance: int = 0
    debt: int = 0
    tier: str | None = None
    view: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    next_due_ms: int | None = None
    updated_at: str = ""


@dataclass(frozen=True)
class RewardRow:
    reward_id: str
    name: str
    points_cost: int
    stock: int
    per_member_limit: int | None
    valid_from: str | None
    valid_until: str | None
    active: bool
    created_at: str
    description: str = ""
    redeemed: int = 0


@dataclass(frozen=True)
class RedemptionRow:
    redemption_id: str
    customer_id: str
    record_id: str
    reward_id: str
    quantity: int
    points: int
    status: str
    created_at: str
    by: str
    cancelled_at: str | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None


@dataclass(frozen=True)
class IdempotencyRow:
    """A request already answered: same key and same body get the same answer."""

    scope: str
    key: str
    fingerprint: str
    status: int
    body: str
    at: str


@dataclass(frozen=True)
class Announcement:
    announcement_id: str
    customer_id: str
    expires_at: str
    points: int
    at: str


@dataclass(frozen=True)
class TierOverrideRow:
    """A staff override of a customer's tier: ``tier`` from ``starts_at`` through the day ``until`` (it ends
    at ``ends_at``, the first moment after that day), unless lifted earlier."""

    override_id: str
    customer_id: str
    tier: str
    until: str  # the last day it holds, YYYY-MM-DD in the business zone
    starts_at: str
    ends_at: str
    reason: str
    by: str
    lifted_at: str | None = None
    lifted_by: str | None = None
    lift_reason: str | None = None


@dataclass(frozen=True)
class ApprovalRow:
    """A points adjustment above the approval threshold, waiting for (or given) a second person's decision."""

    approval_id: str
    customer_id: str
    points: int
    reason: str
    requested_by: str
    requested_at: str
    status: str = "pending"  # pending | approved | rejected
    decided_by: str | None = None
    decided_at: str | None = None
    decision_reason: str | None = None
    adjustment_id: str | None = None


class LoyaltyStore(OutboxStore, Protocol):
    """The operations loyalty performs on its data; writes run inside ``transaction()``."""

    def transaction(self) -> AbstractContextManager[Any]: ...
    # memberships (shared.storage.membership)
    def apply_memberships(self, rows: Iterable[Membership]) -> set[str]: ...
    def apply_membership_runs(self, runs: list[list[Membership]]) -> list[set[str]]: ...
    def customer_of(self, record_id: str) -> str: ...
    def customers_of(self, record_ids: list[str]) -> dict[str, str]: ...
    def records_of(self, customer_id: str) -> list[str]: ...
    def known(self, record_id: str) -> bool: ...
    def records_of_many(self, customer_ids: list[str]) -> dict[str, list[str]]: ...
    # facts
    def add_purchases(self, rows: list[Purchase]) -> list[Purchase]: ...
    def add_refunds(self, rows: list[Refund]) -> list[Refund]: ...
    def put_bonus(self, row: Bonus) -> bool: ...
    def purchases_of(self, record_ids: list[str], *, since_ms: int | None = None) -> list[Purchase]: ...
    def purchases_for_orders(self, order_ids: list[str]) -> list[Purchase]: ...
    def refunds_for_orders(self, order_ids: list[str]) -> list[Refund]: ...
    def bonuses_of(self, record_ids: list[str]) -> list[Bonus]: ...
    # ledger
    def add_entries(self, entries: list[Entry]) -> None: ...
    def posted(self, record_ids: list[str], *, buckets: list[str] | None = None) -> dict[tuple[str, str], Posted]: ...
    def posted_many(self, asks: dict[str, tuple[list[str], list[str] | None]]
                    ) -> dict[str, dict[tuple[str, str], Posted]]: ...
    def movements_of(self, record_ids: list[str]) -> list[Entry]: ...
    def balance(self, record_ids: list[str], *, before: str | None = None) -> int: ...
    def balances_of(self, record_ids: list[str]) -> dict[str, int]: ...
    def entries(self, record_ids: list[str], *, before: tuple[str, str] | None, limit: int) -> list[Entry]: ...
    def entries_posted(self, record_ids: list[str], *, start: str, end: str) -> list[Entry]: ...
    # accounts and schedule
    def account(self, customer_id: str) -> AccountRow | None: ...
    def accounts_of(self, customer_ids: list[str]) -> dict[str, AccountRow]: ...
    def put_account(self, row: AccountRow) -> None: ...
    def put_accounts(self, rows: list[AccountRow]) -> None: ...
    def checkpoint(self, customer_id: str) -> str | None: ...
    def checkpoints_of(self, customer_ids: list[str]) -> dict[str, str]: ...
    def put_checkpoint(self, customer_id: str, state: str) -> None: ...
    def put_checkpoints(self, states: dict[str, str]) -> None: ...
    def debit_balance(self, customer_id: str, points: int) -> bool: ...
    def due_accounts(self, now_ms: int, *, limit: int) -> list[str]: ...
    def account_count(self) -> int: ...
    def announced(self, customer_id: str, expires_at: list[str]) -> dict[str, int]: ...
    def announced_many(self, asks: dict[str, list[str]]) -> dict[str, dict[str, int]]: ...
    def add_announcements(self, rows: list[Announcement]) -> None: ...
    # rewards, redemptions, idempotency
    def add_reward(self, row: RewardRow) -> None: ...
    def reward(self, reward_id: str) -> RewardRow | None: ...
    def rewards(self, *, active_only: bool, offset: int, limit: int) -> list[RewardRow]: ...
    def update_reward(self, reward_id: str, *, changes: dict[str, Any], add_stock: int = 0) -> bool: ...
    def take_stock(self, reward_id: str, quantity: int) -> bool: ...
    def return_stock(self, reward_id: str, quantity: int) -> None: ...
    def add_redemption(self, row: RedemptionRow) -> None: ...
    def redemption(self, redemption_id: str) -> RedemptionRow | None: ...
    def redemptions_of(self, record_ids: list[str], *, offset: int, limit: int) -> list[RedemptionRow]: ...
    def redeemed_count(self, record_ids: list[str], reward_id: str) -> int: ...
    def cancel_redemption(self, redemption_id: str, *, at: str, by: str, reason: str) -> bool: ...
    def idempotent(self, scope: str, key: str) -> IdempotencyRow | None: ...
    def put_idempotent(self, row: IdempotencyRow) -> None: ...

    # -- issue 12, scoped access (H2): each customer's owning store, from identity ----------
    def put_owners(self, rows: Iterable[OwnerRow]) -> None: ...
    def owners_of(self, customer_ids: list[str]) -> dict[str, str | None]: ...

    # -- issue 14, staff corrections: tier overrides and adjustments awaiting approval ----------
    def add_tier_override(self, row: TierOverrideRow) -> None: ...
    def tier_overrides_of(self, record_ids: list[str]) -> list[TierOverrideRow]: ...
    def lift_tier_override(self, override_id: str, *, at: str, by: str, reason: str) -> bool: ...
    def add_approval(self, row: ApprovalRow) -> None: ...
    def approval(self, approval_id: str) -> ApprovalRow | None: ...
    def approvals(self, *, status: str | None, stores: frozenset[str] | None, offset: int, limit: int,
                  records: list[str] | None = None) -> list[ApprovalRow]: ...
    def decide_approval(self, approval_id: str, *, status: str, by: str, at: str, reason: str,
                        adjustment_id: str | None) -> bool: ...

    # issue 12, erasure (H4); erased_ids, note_erased and forget_messages come with the outbox
    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]: ...

    # issue 14, member import: opening lots (posted once, as movements) and imported tiers
    def add_openings(self, entries: list[Entry]) -> list[Entry]: ...
    def add_tier_imports(self, rows: list[TierImport]) -> list[TierImport]: ...
    def tier_imports_of(self, record_ids: list[str]) -> list[TierImport]: ...
