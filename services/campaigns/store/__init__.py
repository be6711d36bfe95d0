"""What campaigns needs from storage: a Protocol and the rows it speaks in (the adapters are in
``store.sqlite`` and ``store.mongo``; ``app`` picks one).

Facts are kept per identity record (purchases, refunds, profile and consent fields) beside the
record → customer mapping (``shared.storage.membership``), so merges and unmerges follow exactly. Campaign
members are kept as launched (the customer id of the snapshot) and resolved to the customer they
belong to now whenever they are read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from services.campaigns.domain.attribution import Enrolment, Refund, Sale
from services.campaigns.domain.audience import CustomerFacts
from services.campaigns.domain.delivery import Receipt
from services.campaigns.domain.results import PeriodSales
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.base import OutboxMessage
from shared.storage.membership import Membership
from shared.storage.outbox import OutboxStore
from shared.storage.owners import OwnerRow


@dataclass(frozen=True)
class CampaignRow:
    """A campaign as stored: its definition (JSON), status and launch summary."""

    id: str
    definition: dict[str, Any]
    status: str
    created_at: str
    updated_at: str
    starts_at: str  # UTC, sorts as text (the scheduler's key)
    ends_at: str
    launched_at: str | None = None
    launch: dict[str, Any] | None = None
    paused_from: str | None = None
    last_error: str | None = None
    idempotency_key: str | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class MemberRow:
    """One audience member as launched; ``customer_id`` is filled on reads (the customer now)."""

    campaign_id: str
    member_id: str
    group: str
    at_ms: int
    window_ms: int
    bucket: int
    tier: str | None
    age_band: str
    home_store: str | None
    returning: bool
    customer_id: str | None = None
    # Purchases and touches before the launch; None for members launched before they were kept.
    purchases: int | None = None
    touches_before: int | None = None


@dataclass(frozen=True)
class TouchRow:
    """A touch sent to a treatment member."""

    touch_id: str
    campaign_id: str
    customer_id: str
    channel: str
    at_ms: int
    step: str = "initial"  # issue 14: "follow_up" for the touch a reply earned


class CampaignsStore(OutboxStore, Protocol):
    """The operations campaigns performs on its data; writes run inside ``transaction()``."""

    def transaction(self) -> AbstractContextManager[Any]: ...

    # facts consumed from identity and loyalty, written a batch at a time
    def seen_first(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]: ...
    def apply_memberships(self, rows: Iterable[Membership]) -> set[str]: ...
    def current_customers(self, ids: Collection[str]) -> dict[str, str]: ...
    def add_purchases(self, facts: list[PurchaseFact]) -> None: ...
    def add_refunds(self, facts: list[RefundFact]) -> None: ...
    def put_attributes(self, values: list[tuple[str, list[FieldValue]]]) -> None: ...
    def put_tiers(self, rows: list[tuple[str, str | None, str]]) -> None: ...

    # campaigns
    def add_campaign(self, row: CampaignRow) -> None: ...
    def campaign(self, campaign_id: str) -> CampaignRow | None: ...
    def campaign_by_key(self, key: str) -> CampaignRow | None: ...
    def campaigns(self, *, status: str | None, offset: int, limit: int) -> list[CampaignRow]: ...
    def campaign_count(self, *, status: str | None) -> int: ...
    def update_campaign(self, campaign_id: str, *, expect_status: str, **changes: Any) -> bool: ...
    def due(self, *, now: str) -> tuple[list[str], list[str]]: ...
    def campaign_names(self, ids: Collection[str]) -> dict[str, str]: ...

    # audiences
    def customer_facts(self, *, as_of_ms: int, fields: Collection[str] | None = None,
                       categories: bool = True, customers: Collection[str] | None = None) -> list[CustomerFacts]: ...
    def customer_ids(self) -> list[str]: ...
    def touch_counts(self, *, since_ms: int, until_ms: int) -> dict[str, int]: ...
    def touch_times(self, *, customers: Collection[str] | None = None,
                    campaigns: Collection[str] | None = None) -> list[tuple[str, int, str]]: ...
    def add_members(self, rows: list[MemberRow]) -> None: ...
    def add_touches(self, rows: list[TouchRow]) -> set[str]: ...
    def members(self, campaign_id: str, *, group: str | None = None, after: str | None = None,
                limit: int | None = None, owned_by: frozenset[str] | None = None) -> list[MemberRow]: ...
    def member_count(self, campaign_id: str, *, group: str | None = None,
                     owned_by: frozenset[str] | None = None) -> int: ...
    def touch_count(self, campaign_id: str) -> int: ...

    # attribution and the customer view
    def enrolments(self, customers: Collection[str]) -> list[Enrolment]: ...
    def sales(self, customers: Collection[str], *, since_ms: int | None = None,
              until_ms: int | None = None) -> tuple[list[Sale], list[Refund]]: ...
    def period_sales(self, *, since_ms: int, until_ms: int) -> PeriodSales: ...
    def period_sales_of(self, customers: Collection[str] | None, *, since_ms: int,
                        until_ms: int) -> dict[str, tuple[int, int, int]]: ...
    def view_hashes(self, customers: Collection[str]) -> dict[str, str]: ...
    def save_views(self, hashes: dict[str, str], *, floor: int = 0) -> dict[str, int]: ...

    # large outboxes relayed under a lease (see ``handlers.outbox``)
    def outbox_lease(self, messages: list[OutboxMessage], *, until_ms: int) -> str | None: ...
    def outbox_renew(self, lease_id: str, *, now_ms: int, until_ms: int) -> bool: ...
    def outbox_release(self, lease_id: str) -> None: ...
    def outbox_unleased(self, *, limit: int = 1000, older_than_s: float = 0) -> list[OutboxMessage]: ...

    # -- issue 12, scoped access (H2): each customer's owning store, from identity ----------
    def put_owners(self, rows: Iterable[OwnerRow]) -> None: ...
    def owners_of(self, customer_ids: list[str]) -> dict[str, str | None]: ...

    # issue 12, erasure (H4); erased_ids, note_erased and forget_messages come with the outbox
    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]: ...

    # -- issue 14, delivery receipts: kept once per (source, id), read per campaign ------------------
    def add_receipts(self, rows: list[Receipt]) -> list[Receipt]: ...
    def touches_by_id(self, touch_ids: Collection[str]) -> dict[str, TouchRow]: ...
    def campaign_touches(self, campaign_id: str) -> list[TouchRow]: ...
    def receipts(self, campaign_id: str) -> list[Receipt]: ...
    def touches_of(self, member_ids: Collection[str]) -> list[TouchRow]: ...
    def receipts_of(self, touch_ids: Collection[str]) -> list[Receipt]: ...
    def field_values(self, customers: Collection[str], *,
                     fields: Collection[str]) -> dict[str, dict[str, FieldValue]]: ...


class SumsPeriodSales:
    """``period_sales`` of either adapter: the sum of its ``period_sales_of`` over every customer."""

    def period_sales(self, *, since_ms: int, until_ms: int) -> PeriodSales:
        """Every customer's purchases in ``[since, until)``, and the refunds of those orders (capped at each order)."""
        per = self.period_sales_of(None, since_ms=since_ms, until_ms=until_ms)  # type: ignore[attr-defined]
        return PeriodSales.summed(since_ms, until_ms, per.values())
