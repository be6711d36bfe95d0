"""Identity's HTTP schemas: one family per resource."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictBool, field_validator

from shared.access.audit import REASON_MAX
from shared.contract.view_parts import AlertsPart, CampaignItem, LoyaltyPart
from shared.http.bounds import MAX_ID


class IdentifierRead(BaseModel):
    type: str
    value: str
    first_seen: str
    source: str
    event_id: str
    record_id: str
    # Issue 14: an identifier a phone change took off the customer stays listed, marked; it links nothing.
    replaced_at: str | None = Field(None, description="when staff replaced it (a phone change); null while it links")
    replaced_by: str | None = None


class FieldSource(BaseModel):
    channel: str = Field(description="pos, wechat, web, or staff for a staff correction")
    source: str
    event_id: str
    time: str
    by: str | None = Field(None, description="who corrected the field (staff corrections only)")


class OwnerRead(BaseModel):
    """The store that owns a customer (decides who may see them): assigned by staff, or computed."""

    store_id: str | None
    assigned: bool = Field(description="true when staff assigned the store; false when computed from purchases "
                                       "and complaints")
    assigned_by: str | None = None
    assigned_at: str | None = None


class AccountManagerRead(BaseModel):
    id: str
    assigned_by: str
    assigned_at: str


class StatsRead(BaseModel):
    purchase_count: int
    purchase_days: int
    total_spend: str
    refund_total: str
    first_purchase_at: str | None
    last_purchase_at: str | None
    home_store: str | None


class CustomerRead(BaseModel):
    """The single customer view."""

    customer_id: str
    phone: str | None
    identifiers: list[IdentifierRead]
    attributes: dict[str, Any]
    attribute_sources: dict[str, FieldSource]
    consents: dict[str, dict[str, Any]]
    stats: StatsRead
    loyalty: LoyaltyPart | None
    alerts: AlertsPart
    campaigns: list[CampaignItem]
    merged_from: list[str]
    updated_at: str
    owner: OwnerRead | None = None
    account_manager: AccountManagerRead | None = None


class TimelineEvent(BaseModel):
    source: str
    id: str
    type: str
    channel: str
    time: str
    record_id: str
    data: dict[str, Any]


class TimelinePage(BaseModel):
    customer_id: str
    items: list[TimelineEvent]
    next_cursor: str | None


class MergeRead(BaseModel):
    merge_id: str
    survivor_id: str
    merged_id: str
    cause: dict[str, Any]
    at: str
    undone_at: str | None
    undone_by: str | None


class MergesPage(BaseModel):
    customer_id: str
    items: list[MergeRead]


class UnmergeCreate(BaseModel):
    merge_id: str = Field(min_length=1, max_length=200)


class UnmergeRead(BaseModel):
    merge_id: str
    survivor_id: str
    restored_id: str
    records: list[str]


class ConflictRead(BaseModel):
    conflict_id: str
    kind: str
    identifier_type: str
    identifier_pseudonym: str
    customer_ids: list[str]
    source: str
    event_id: str
    at: str
    status: str
    resolved_by: str | None
    note: str | None


class ConflictsPage(BaseModel):
    items: list[ConflictRead]
    offset: int
    limit: int


class ConflictUpdate(BaseModel):
    status: Literal["dismissed", "resolved"]
    note: str | None = Field(None, max_length=2000)


class EventResult(BaseModel):
    index: int
    status: Literal["accepted", "rejected"]
    id: str | None = None
    source: str | None = None
    topic: str | None = None
    code: str | None = None
    reasons: list[str] = Field(default_factory=list)


class IngestRead(BaseModel):
    accepted: int
    rejected: int
    results: list[EventResult]


# Issue 12, access (H1): the stores registry and the staff sign-in.
class StoreRead(BaseModel):
    store_id: str
    name: str
    region: str
    timezone: str
    parent: str | None = None
    meal_periods: dict[str, str] = Field(default_factory=dict, description="name -> HH:MM-HH:MM")


class StoresPage(BaseModel):
    items: list[StoreRead]
    unregistered: list[str] = Field(description="store ids events named that the registry lacks, sorted")


class TokenRead(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class RevokedToken(BaseModel):
    token_id: str = Field(description="the signed-out token's `jti`")
    expires_at: int = Field(description="when the token would have expired anyway (epoch seconds)")


class RevokedTokensRead(BaseModel):
    items: list[RevokedToken]

# -- issue 12, audit (H5) -------------------------------------------------------------------------


class AuditRead(BaseModel):
    """One audited act: who, in which role and scope, when, what, on which customer, and why."""

    audit_id: str
    at: str
    service: str
    actor: str = Field(description="the staff account's user name or the API key's label (never a key or its hash)")
    role: str
    scope: str
    action: str
    customer_id: str | None
    target: str | None = Field(description="the id of what was acted on (a redemption, an alert, a campaign…)")
    reason: str | None = Field(description="the X-Reason header or the reason given, personal data scrubbed")


class AuditPage(BaseModel):
    items: list[AuditRead]
    next_cursor: str | None

# -- issue 12, erasure and export (H4) ------------------------------------------------------------


class ErasureCreate(BaseModel):
    """Why a customer is erased (kept with the erasure; say what asked for it, never the person's data)."""

    reason: str = Field(..., max_length=2000)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reason must not be blank")
        return value.strip()


class ErasureAccepted(BaseModel):
    erasure_id: str


class ErasureRead(BaseModel):
    """How far an erasure has come: ``done`` once every service has confirmed."""

    erasure_id: str
    status: Literal["pending", "done"]
    services: dict[str, Literal["pending", "done"]]
    requested_at: str
    confirmed_at: dict[str, str | None]


class ExportRead(BaseModel):
    """Everything the platform holds of one customer, a key per service."""

    customer_id: str
    identity: dict[str, Any]
    loyalty: dict[str, Any]
    alerts: dict[str, Any]
    campaigns: dict[str, Any]

# -- issue 14, staff corrections ------------------------------------------------------------------


class _Reasoned(BaseModel):
    """A staff write: why, required (kept in the audit log, scrubbed of personal data)."""

    model_config = {"extra": "forbid"}

    reason: str = Field(..., max_length=REASON_MAX, description="why (kept in the audit log, personal data masked)")

    @field_validator("reason")
    @classmethod
    def _reason_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("reason must not be blank")
        return value.strip()


class MergeCreate(_Reasoned):
    """Merge another customer into this one (a conflict review found them to be one person)."""

    customer_id: str = Field(..., min_length=1, max_length=MAX_ID, description="the customer merged into this one")
    conflict_id: str | None = Field(None, min_length=1, max_length=MAX_ID,
                                    description="the conflict this merge resolves (closed as resolved)")


class MergeDone(BaseModel):
    merge_id: str = Field(description="undo with POST /v1/customers/{survivor_id}/unmerge {merge_id}")
    survivor_id: str
    merged_id: str
    records: list[str]


class PhoneChange(_Reasoned):
    phone: str = Field(..., min_length=1, max_length=40, description="the new phone number, any notation")


class PhoneChanged(BaseModel):
    customer_id: str
    change_id: str
    replaced: bool = Field(description="whether an old phone was replaced (kept in the history, no longer linking)")


class ProfileCorrection(_Reasoned):
    """Profile fields to correct (at least one); each becomes the customer's value from the ``staff`` source."""

    name: str | None = Field(None, min_length=1, max_length=128)
    gender: str | None = Field(None, min_length=1, max_length=16)
    birthday: date | None = None
    email: str | None = Field(None, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    city: str | None = Field(None, min_length=1, max_length=128)
    attributes: dict[str, Annotated[str, Field(max_length=1000)] | int | Annotated[float, Field(allow_inf_nan=False)]
                     | bool] = Field(default_factory=dict, max_length=50)

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, value: dict) -> dict:
        for key in value:
            if not key or len(key) > 64:
                raise ValueError("attribute names are 1 to 64 characters")
        return value


class ProfileCorrected(BaseModel):
    customer_id: str
    correction_id: str
    fields: list[str]
    at: str


class ConsentCorrection(_Reasoned):
    """A consent the customer gave or withdrew in front of staff."""

    granted: StrictBool


class ConsentCorrected(BaseModel):
    customer_id: str
    correction_id: str
    purpose: str
    granted: bool
    at: str


class OwnerAssign(_Reasoned):
    store_id: str | None = Field(..., min_length=1, max_length=MAX_ID,
                                 description="the owning store; null gives back the one computed from purchases")


class ManagerAssign(_Reasoned):
    account_manager: str | None = Field(..., min_length=1, max_length=MAX_ID,
                                        description="the staff id of the account manager; null ends the assignment")


class AssignmentRead(BaseModel):
    customer_id: str
    owner: OwnerRead
    account_manager: AccountManagerRead | None


class CustomersPage(BaseModel):
    """A page of customers (masked like every view): those assigned to one account manager, newest assignment
    first, or those with a name (``GET /v1/customers/search``), by id."""

    items: list[CustomerRead]
    offset: int
    limit: int


# -- issue 14, member import ------------------------------------------------------------------------------


class ImportRowErrorRead(BaseModel):
    """A rejected row: which file, line and column, and why (never the value)."""

    file: str
    line: int
    column: str
    reason: str


class ImportRead(BaseModel):
    """An import job: ``running``, ``done`` or ``failed`` (a file that cannot be read at all: ``error``); counts
    per file (``members.rows``, ``members.imported``, ``members.rejected``, ``points.…``, ``events``), lines
    done per file, and a page of rejected rows."""

    import_id: str
    kind: Literal["members", "orders"]
    status: Literal["running", "done", "failed"]
    counts: dict[str, int]
    progress: dict[str, int]
    rejected_rows: int
    created_at: str
    updated_at: str
    error: str | None = None
    files: dict[str, dict[str, str]]
    errors: list[ImportRowErrorRead]
