"""What identity needs from storage: a Protocol and the rows it speaks in (adapters: ``store/sqlite.py``,
``store/mongo.py``, chosen in ``app.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.identity.domain.cleaning import Ident
from services.identity.domain.resolution import Found
from shared.access.audit import AuditEntry, AuditQuery
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.outbox import OutboxStore
from shared.storage.owners import OwnerRow


@dataclass(frozen=True)
class EventRow:
    """A channel event as identity keeps it for the timeline."""

    source: str
    id: str
    record_id: str
    type: str
    channel: str
    time: str
    time_ms: int
    payload: str
    ingested_at: str


@dataclass(frozen=True)
class NewRecord:
    """A customer record to create (issue 13: a batch creates its new records in one write)."""

    id: str
    phone: str | None
    at: str


@dataclass(frozen=True)
class RecordRow:
    """A customer record; it is an active customer when it is its own root."""

    id: str
    root_id: str
    merged_into: str | None
    phone: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class IdentifierRow:
    type: str
    value: str
    record_id: str
    first_seen: str
    source: str
    event_id: str


@dataclass(frozen=True)
class MergeRow:
    merge_id: str
    survivor_id: str
    merged_id: str
    cause: dict[str, Any]
    at: str
    undone_at: str | None = None
    undone_by: str | None = None


@dataclass(frozen=True)
class ConflictRow:
    conflict_id: str
    kind: str
    identifier_type: str
    identifier_pseudonym: str
    customer_ids: tuple[str, ...]
    source: str
    event_id: str
    at: str
    status: str = "open"
    resolved_by: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class StatsRow:
    purchase_count: int = 0
    purchase_days: int = 0
    spend_minor: int = 0
    refund_minor: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    store_days: list[tuple[str, int, str]] = field(default_factory=list)


# -- issue 12, erasure and export (H4) ------------------------------------------------------------

ERASURE_SERVICES = ("identity", "loyalty", "alerts", "campaigns")


@dataclass(frozen=True)
class ErasureRow:
    """An erasure asked for: whose, why, by whom, and when each service confirmed it (``None``: not yet)."""

    erasure_id: str
    customer_id: str
    records: tuple[str, ...]
    reason: str
    requested_by: str
    requested_at: str
    confirmed: dict[str, str | None] = field(default_factory=dict)


class ErasureStore(Protocol):
    """Identity's erasure operations (part of :class:`IdentityStore`; kept apart so the block stays one)."""

    def erase(self, records: list[str], *, erasure: ErasureRow, pseudonyms: list[str]) -> None: ...
    def has_erasures(self) -> bool: ...
    def erased(self, pseudonyms: list[str]) -> set[str]: ...
    def erasure(self, erasure_id: str) -> ErasureRow | None: ...
    def confirm_erasure(self, erasure_id: str, *, service: str, at: str) -> bool: ...


# -- issue 14, staff corrections ------------------------------------------------------------------


@dataclass(frozen=True)
class ReplacedIdentifierRow:
    """An identifier a staff correction took off a customer: kept for the history, never found again."""

    type: str
    value: str
    record_id: str
    first_seen: str
    source: str
    event_id: str
    replaced_at: str
    replaced_by: str
    change_id: str


@dataclass(frozen=True)
class AssignmentRow:
    """A customer staff assigned to a store (``kind`` "store") or to an account manager (``kind`` "manager")."""

    customer_id: str
    kind: str
    value: str
    by: str
    at: str


ASSIGNMENT_KINDS = ("store", "manager")


class CorrectionStore(Protocol):
    """Identity's staff-correction operations (part of :class:`IdentityStore`)."""

    def replace_identifier(self, ident: Ident, *, change_id: str, by: str, at: str) -> bool: ...
    def set_phone(self, record_id: str, *, phone: str, at: str) -> None: ...
    def replaced_identifiers(self, record_ids: list[str]) -> list[ReplacedIdentifierRow]: ...
    def has_replaced_identifiers(self) -> bool: ...
    def replacements(self, idents: list[Ident]) -> dict[Ident, list[tuple[str, str]]]: ...
    def put_assignment(self, row: AssignmentRow) -> None: ...
    def remove_assignment(self, customer_id: str, *, kind: str) -> bool: ...
    def assignments_of(self, customer_ids: list[str]) -> dict[str, dict[str, AssignmentRow]]: ...
    def assigned_to(self, kind: str, value: str, *, stores: frozenset[str] | None, offset: int,
                    limit: int) -> list[AssignmentRow]: ...


# -- issue 14, member import: jobs with their progress and rejected rows, and declared home stores -----------


@dataclass(frozen=True)
class HomeStoreRow:
    """The store a record's member file named as its home, as of the event's time (a record keeps its latest)."""

    record_id: str
    store_id: str
    time_ms: int


@dataclass(frozen=True)
class ImportJob:
    """An import: its files (``{"members": {"path", "sha256", "format"}, ...}``), how far each is published
    (``progress``: lines done, every event before them acknowledged by the broker) and the counts so far."""

    job_id: str
    kind: str  # members | orders
    status: str  # running | done | failed
    files: dict[str, dict[str, Any]]
    options: dict[str, Any]
    progress: dict[str, int]
    counts: dict[str, int]
    created_at: str
    updated_at: str
    by: str
    error: str | None = None


@dataclass(frozen=True)
class ImportRowError:
    """A rejected row: file, line number, column and a reason that never holds the value."""

    job_id: str
    file: str
    line: int
    column: str
    reason: str


class ImportStore(Protocol):
    """Identity's import operations (part of :class:`IdentityStore`)."""

    def put_import_job(self, job: ImportJob) -> None: ...
    def import_job(self, job_id: str) -> ImportJob | None: ...
    def unfinished_import_jobs(self) -> list[ImportJob]: ...
    def add_import_errors(self, rows: list[ImportRowError]) -> None: ...
    def import_errors(self, job_id: str, *, offset: int, limit: int) -> list[ImportRowError]: ...
    def add_home_stores(self, rows: list[HomeStoreRow]) -> None: ...
    def home_stores_of(self, root_ids: list[str]) -> dict[str, str]: ...
    def named_stores_of(self, root_ids: list[str]) -> dict[str, tuple[str | None, str | None]]: ...


# -- issue 16, search by name: a blind index of each record's name, kept by ``put_attributes`` with the name ------


class NameStore(Protocol):
    """Identity's search by name (part of :class:`IdentityStore`)."""

    def customers_named(self, name: str, *, stores: frozenset[str] | None, offset: int,
                        limit: int) -> list[str]: ...
    def rebuild_name_index(self, *, at: str) -> bool: ...


def default_name_key() -> bytes:
    """The name index key of this process's settings (stores opened without one, as tools and tests open them)."""
    from services.identity.config import IdentityConfig
    from shared.settings import get_settings

    return IdentityConfig().name_index_key_bytes(get_settings().env)



# -- issue 16, sign-out ------------------------------------------------------------------------------


class TokenStore(Protocol):
    """Signed-out staff tokens (``POST /v1/auth/sign-out``), kept until they would have expired anyway."""

    def revoke_token(self, token_id: str, *, expires_at: int, at: str, now: int) -> None: ...
    def token_revoked(self, token_id: str) -> bool: ...
    def revoked_tokens(self, *, now: int) -> list[tuple[str, int]]: ...


class IdentityStore(OutboxStore, ErasureStore, CorrectionStore, ImportStore, NameStore, TokenStore, Protocol):
    """The operations identity performs on its data; writes run inside ``transaction()``."""

    def transaction(self) -> AbstractContextManager[Any]: ...
    def event_seen(self, source: str, event_id: str) -> bool: ...
    def seen(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]: ...
    def find(self, idents: Iterable[Ident]) -> dict[Ident, Found]: ...
    def blocked_pairs(self, root_ids: Iterable[str]) -> set[frozenset[str]]: ...
    def create_record(self, record_id: str, *, phone: str | None, at: str) -> None: ...
    def create_records(self, rows: list[NewRecord]) -> None: ...
    def link(self, record_id: str, idents: list[Ident], *, source: str, event_id: str, at: str) -> None: ...
    def link_all(self, links: list[tuple[str, list[Ident], str, str, str]]) -> None: ...
    def merge(self, survivor_id: str, merged_id: str, *, merge_id: str, cause: dict, at: str) -> list[str]: ...
    def unmerge(self, merge_id: str, *, by: str, at: str) -> list[str]: ...
    def add_conflict(self, conflict: ConflictRow) -> None: ...
    def add_events(self, rows: list[EventRow]) -> None: ...
    def add_purchases(self, rows: list[PurchaseFact]) -> None: ...
    def add_refunds(self, rows: list[RefundFact]) -> None: ...
    def put_attributes(self, values: list[tuple[str, list[FieldValue]]]) -> None: ...
    def touch(self, record_id: str, *, at: str) -> None: ...
    def touch_all(self, record_ids: list[str], *, at: str) -> None: ...

    def record(self, record_id: str) -> RecordRow | None: ...
    def group(self, root_id: str) -> list[str]: ...
    def identifiers(self, record_ids: list[str]) -> list[IdentifierRow]: ...
    def attributes(self, record_ids: list[str]) -> list[FieldValue]: ...
    def stats(self, record_ids: list[str]) -> StatsRow: ...
    def timeline(self, record_ids: list[str], *, before: tuple[int, str, str] | None, limit: int) -> list[EventRow]: ...
    def merges(self, record_ids: list[str]) -> list[MergeRow]: ...
    def merge_row(self, merge_id: str) -> MergeRow | None: ...
    def conflicts(
        self, *, status: str | None, customer_id: str | None, offset: int, limit: int
    ) -> list[ConflictRow]: ...
    def set_conflict_status(self, conflict_id: str, *, status: str, by: str, note: str | None) -> bool: ...
    def customer_count(self) -> int: ...
    def put_part(self, customer_id: str, part: str, value: dict, *, version: str) -> None: ...
    def put_parts(self, parts: list[tuple[str, str, dict, str]]) -> None: ...
    def parts(self, record_ids: list[str]) -> dict[str, list[dict]]: ...

    # Issue 12, access (H1): the stores events named, for the stores registry's "not in the registry" list.
    def store_ids_seen(self) -> set[str]: ...

    # -- issue 12, audit and retention (H5): the audit log (append-only: the one change is an erasure masking
    #    the erased person's names in the reasons of entries about them) and the purges retention runs.
    def audit_add(self, entries: list[AuditEntry]) -> None: ...
    def audit_find(self, query: AuditQuery, *, after: tuple[str, str] | None, limit: int) -> list[AuditEntry]: ...
    def audit_scrub(self, customer_ids: list[str], *, scrub: Callable[[str], str], targets: list[str]) -> int: ...
    def audit_purge(self, *, before: str) -> int: ...
    def timeline_purge(self, *, before_ms: int) -> int: ...


    # -- issue 12, scoped access (H2): each customer's owning store -----------------------
    def store_days_of(self, root_ids: list[str]) -> dict[str, list[tuple[str, int, str]]]: ...
    def put_owners(self, rows: Iterable[OwnerRow]) -> None: ...
    def owners_of(self, customer_ids: list[str]) -> dict[str, str | None]: ...
    def conflicts_owned(
        self, stores: frozenset[str], *, status: str | None, customer_id: str | None, offset: int, limit: int
    ) -> list[ConflictRow]: ...
    def conflict_customers(self, conflict_id: str) -> tuple[str, ...] | None: ...


    # -- the store of each customer's latest complaint: the owning store of one who never bought ----------
    def add_complaint_stores(self, rows: list[ComplaintStoreRow]) -> None: ...
    def complaint_stores_of(self, root_ids: list[str]) -> dict[str, str]: ...

    # -- issue 12, scope gaps: the operations summary counted over a scope -------------------------
    def customer_count_owned(self, stores: frozenset[str]) -> int: ...
    def backfill_complaint_stores(self, *, at: str) -> list[str]: ...


@dataclass(frozen=True)
class ComplaintStoreRow:
    """The store a record's complaint named, at the complaint's event time (a record keeps its latest)."""

    record_id: str
    store_id: str
    time_ms: int


# Issue 12, scope gaps: the complaint stores of complaints kept before ``complaint_stores`` existed.
COMPLAINT_BACKFILL = "complaint_stores"


def complaint_store_in(payload: str | None) -> str | None:
    """The store a kept complaint event's payload (the event as validated, JSON) names, if any; None for a
    payload retention emptied or whose customer's key was shredded."""
    if not payload:
        return None
    data = json.loads(payload).get("data")
    store = data.get("store_id") if isinstance(data, dict) else None
    return store if isinstance(store, str) and store else None
