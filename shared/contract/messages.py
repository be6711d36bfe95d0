"""Events the services publish to each other. Defined once here, frozen, named in the past tense.

Every message is JSON with a ``kind`` that names its model; :func:`decode` turns any of them back
into its model, so a consumer reads the kinds it knows and ignores the rest. A breaking change
gets a new ``kind``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from shared.contract.events import MAX_EVENT_DEPTH, ChannelEvent, EventHead, InvalidEvent, parse_event
from shared.contract.view_parts import PART_MODELS, PartName, ViewPart


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# -- identity -> everyone (crm.customer.events, crm.customer.merged) ------------------------------


class CustomerEventResolved(_Message):
    """A channel event identity has resolved to a customer (``crm.customer.events``).

    ``record_id`` is the customer record the event belongs to; ``customer_id`` the active
    customer that record is part of now. Keep both: an unmerge gives a record back its events.
    ``event`` is the channel event as validated (CloudEvents JSON, phone included: consumers that
    keep it must treat it as personal data).
    """

    kind: Literal["customer.event"] = "customer.event"
    customer_id: str
    record_id: str
    event: dict[str, Any]
    resolved_at: datetime


class StoreSaleRecorded(_Message):
    """A sale or refund to a non-member (``data.identity`` is ``{}``; issue 15) as identity validated it
    (``crm.customer.events``, keyed by its order): it belongs to no customer, so loyalty and campaigns ignore
    it and alerts counts it in its store's totals only."""

    kind: Literal["store.sale"] = "store.sale"
    event: dict[str, Any]
    resolved_at: datetime


class CustomerMerged(_Message):
    """Records that became one customer, or were split again (``crm.customer.merged``)."""

    kind: Literal["customer.merged", "customer.unmerged"]
    merge_id: str
    survivor_id: str
    merged_id: str
    # Every record now under the survivor (merged) or given back to merged_id (unmerged).
    records: list[str]
    at: datetime


# -- every downstream service -> identity ---------------------------------------------------------


class ViewPartUpdated(_Message):
    """A service's part of the single customer view, replacing the one identity holds.

    Published on the service's own topic (``crm.loyalty.events``, ``crm.alerts.events``,
    ``crm.campaigns.events``) whenever the part changes. ``version`` sorts as text (see
    :func:`part_version`); identity keeps the highest per customer and part, and shows
    the part of the active customer only (a service republishes the survivor's part after a merge
    and both parts after an unmerge).

    ``value`` is the model of its ``part`` (:mod:`shared.contract.view_parts`): ``LoyaltyPart``,
    ``AlertsPart`` or ``CampaignsPart``; a value that is not its part's model is not a valid message.
    """

    kind: Literal["view.part"] = "view.part"
    customer_id: str
    part: PartName
    value: ViewPart
    version: str

    @field_validator("value", mode="before")
    @classmethod
    def _value_of_its_part(cls, value: Any, info: ValidationInfo) -> Any:
        # The value's model is chosen by ``part`` (which is validated first), not guessed from its fields.
        model = PART_MODELS.get(info.data.get("part", ""))
        if model is None or isinstance(value, model):
            return value
        if isinstance(value, BaseModel):
            raise PydanticCustomError("view_part", "a {given} is not the {part} part",
                                      {"given": type(value).__name__, "part": info.data["part"]})
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            fields = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
                               for e in exc.errors(include_input=False, include_url=False))
            raise PydanticCustomError("view_part", "not a {part} part ({fields})",
                                      {"part": info.data["part"], "fields": fields}) from None


def part_version_floor() -> int:
    """The least next version of a view part: the real clock in microseconds.

    A part's version is one more than the customer's last, and never below this floor, so versions
    grow per customer even when a service's store is rebuilt from scratch (its new counters start
    above everything published before, which identity would otherwise keep as "newer"). The real
    clock, never a service's business clock: a replay or drill may set that in the past or future."""
    return time.time_ns() // 1000


def next_part_version(last: int) -> int:
    """The version after ``last``."""
    return max(last + 1, part_version_floor())


def part_version(number: int) -> str:
    """A version as ``ViewPartUpdated`` carries it: zero-padded, so text order is number order."""
    return f"{number:020d}"


# -- loyalty -> alerts, campaigns (crm.loyalty.events) --------------------------------------------


class PointsExpiryAnnounced(_Message):
    """Points of a customer will expire at ``expires_at``; sent ``notice_days`` ahead, once per lot set."""

    kind: Literal["loyalty.expiry_announced"] = "loyalty.expiry_announced"
    announcement_id: str
    customer_id: str
    points: int
    expires_at: datetime
    balance: int
    at: datetime


class PointsExpired(_Message):
    """Points that expired unredeemed."""

    kind: Literal["loyalty.points_expired"] = "loyalty.points_expired"
    entry_id: str
    customer_id: str
    points: int
    at: datetime


class TierChanged(_Message):
    """A customer's tier changed: an upgrade when the rule is met, a downgrade at a periodic review."""

    kind: Literal["loyalty.tier_changed"] = "loyalty.tier_changed"
    change_id: str
    customer_id: str
    previous: str | None
    tier: str | None
    direction: Literal["upgrade", "downgrade"]
    reason: str
    benefits: dict[str, Any] = Field(default_factory=dict)
    at: datetime


# -- campaigns -> loyalty, channel systems (crm.campaigns.events, crm.campaigns.touches) ----------


class CampaignBonusGranted(_Message):
    """A treatment-group member earns ``multiplier`` times the base points on purchases in the window.

    ``active`` false withdraws the bonus (a campaign cancelled before its window); re-sending the same
    ``grant_id`` changes nothing.
    """

    kind: Literal["campaign.bonus"] = "campaign.bonus"
    grant_id: str
    campaign_id: str
    customer_id: str
    multiplier: Decimal
    starts_at: datetime
    ends_at: datetime
    active: bool = True
    at: datetime


class CampaignTouched(_Message):
    """A campaign asks a channel system to deliver an offer to a customer (``crm.campaigns.touches``)."""

    kind: Literal["campaign.touch"] = "campaign.touch"
    touch_id: str
    campaign_id: str
    customer_id: str
    channel: Literal["sms", "wechat", "email", "mail", "call"]
    offer: dict[str, Any] = Field(default_factory=dict)
    at: datetime
    # Issue 14: "follow_up" for the touch a member's reply to the first one earned (the campaign's follow-up step).
    step: Literal["initial", "follow_up"] = "initial"


# -- alerts -> identity, ops tools (crm.alerts.events) --------------------------------------------


class AlertChanged(_Message):
    """An alert was raised, repeated, acknowledged or resolved."""

    kind: Literal["alert.changed"] = "alert.changed"
    alert_id: str
    customer_id: str
    type: str
    severity: Literal["info", "yellow", "red"]
    status: Literal["open", "acknowledged", "resolved"]
    store_id: str | None = None
    at: datetime


# -- identity -> everyone (crm.customer.owners) ---------------------------------------------------


class CustomerOwnerChanged(_Message):
    """A customer's owning store changed (``crm.customer.owners``, keyed by the customer).

    The owning store decides who may see the customer (a store-scoped principal sees only its own
    customers); identity computes it, as the owner of the single customer view, and every service keeps
    the newest per customer (by ``at``, identity's time). ``store_id`` None: no store owns the customer
    (seen by company-wide principals only).
    """

    kind: Literal["customer.owner"] = "customer.owner"
    customer_id: str
    store_id: str | None
    at: datetime


# -- every service -> identity, for the audit log (each on its own topic) ---------------------------


class AuditRecorded(_Message):
    """One audited act (a write by a person, a reveal of personal data) for identity's audit log.

    Published by loyalty, alerts and campaigns on their own topic; identity keeps it once per
    ``audit_id``. It names customers and things by id only; ``reason`` is scrubbed of personal data.
    """

    kind: Literal["audit.recorded"] = "audit.recorded"
    audit_id: str
    at: str
    service: str
    actor: str
    role: str
    scope: str
    action: str
    customer_id: str | None = None
    target: str | None = None
    reason: str | None = None


# -- identity -> everyone (crm.customer.events): an erasure; everyone -> identity: its confirmation ------


class CustomerErased(_Message):
    """Identity erased a customer (``crm.customer.events``, keyed by the customer, so it follows every event
    of theirs published before it): each service removes or anonymises what it holds of ``records`` and
    confirms with :class:`ErasureConfirmed`. Carries ids only, never what was erased."""

    kind: Literal["customer.erased"] = "customer.erased"
    erasure_id: str
    customer_id: str
    records: list[str]
    at: datetime


class ErasureConfirmed(_Message):
    """A service has erased its part of a customer (on its own topic; identity marks the service done)."""

    kind: Literal["erasure.confirmed"] = "erasure.confirmed"
    erasure_id: str
    service: str
    at: datetime


Message = Annotated[
    CustomerEventResolved | CustomerMerged | ViewPartUpdated | PointsExpiryAnnounced | PointsExpired | TierChanged
    | CampaignBonusGranted | CampaignTouched | AlertChanged | CustomerOwnerChanged | AuditRecorded | CustomerErased
    | ErasureConfirmed | StoreSaleRecorded,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)
_HEAD: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])  # built once: building one per call costs ~0.1 ms
KINDS = frozenset(
    kind for model in (CustomerEventResolved, CustomerMerged, ViewPartUpdated, PointsExpiryAnnounced, PointsExpired,
                       TierChanged, CampaignBonusGranted, CampaignTouched, AlertChanged, CustomerOwnerChanged,
                       AuditRecorded, CustomerErased, ErasureConfirmed, StoreSaleRecorded)
    for kind in model.model_fields["kind"].annotation.__args__  # type: ignore[union-attr]
)


def decode(raw: bytes | str) -> Message | None:
    """The message a service published; ``None`` for a kind this platform version does not know
    (a consumer ignores it). Raises :class:`InvalidEvent` for a value that is not a valid message."""
    try:
        # A valid message of a known kind, the common case, in one pass from its JSON (about half the time
        # of parsing it to a dict and validating that); anything else is read again below to say what it is.
        return _ADAPTER.validate_json(raw)
    except ValidationError:
        pass
    try:
        head = _HEAD.validate_json(raw)
    except ValidationError:
        raise InvalidEvent("invalid_json", ["value is not valid JSON"]) from None
    if head.get("kind") not in KINDS:
        return None
    try:
        return _ADAPTER.validate_python(head)
    except ValidationError as exc:
        reasons = [f"{'.'.join(str(p) for p in e['loc'][1:]) or 'message'}: {e['msg']}"
                   for e in exc.errors(include_input=False, include_url=False)]
        raise InvalidEvent("invalid_message", reasons) from None


@dataclass(frozen=True)
class Read:
    """A message read off a topic; ``event`` is the channel event a resolved customer event carries (its
    :class:`EventHead` only, and ``message.event`` empty, when the consumer does not take its type)."""

    message: Any
    event: ChannelEvent | EventHead | None = None


# -- what a consumer may leave unparsed (issue 13) -------------------------------------------------
# Identity names each message it publishes on crm.customer.events that carries a channel event: the kind of
# message and the channel event's type. A consumer that does not take that type reads the message's head only.
KIND_HEADER = "crm.message.kind"
EVENT_TYPE_HEADER = "crm.event.type"


def kind_headers(kind: str, event_type: str) -> list[tuple[str, bytes]]:
    """The headers naming a message of ``kind`` carrying a channel event of ``event_type``."""
    return [(KIND_HEADER, kind.encode()), (EVENT_TYPE_HEADER, event_type.encode())]


@dataclass(frozen=True)
class Takes:
    """What a consumer of crm.customer.events takes whole: the channel event types it reads, and whether it
    reads non-members' sales (``store.sale``). Of any other, a resolved customer event's head is all it reads
    (its record and customer, when, and which event: every service keeps the mapping and the event's key)."""

    events: frozenset[str]
    store_sales: bool = False

    def skips(self, kind: bytes, event_type: bytes) -> bool:
        """Whether a message these headers name is one this consumer does not take whole."""
        if kind == b"store.sale":
            return not self.store_sales
        return kind == b"customer.event" and event_type.decode("latin-1") not in self.events


class _ResolvedHead(_Message):
    kind: Literal["customer.event"]
    customer_id: str
    record_id: str
    event: EventHead
    resolved_at: datetime


class _SaleHead(_Message):
    kind: Literal["store.sale"]
    event: EventHead
    resolved_at: datetime  # not read, but a sale without it is not a valid message: read whole, dead-lettered


_HEADS: TypeAdapter[_ResolvedHead | _SaleHead] = TypeAdapter(
    Annotated[_ResolvedHead | _SaleHead, Field(discriminator="kind")])



def read(raw: bytes | str, headers: list[tuple[str, bytes]] | None = None, *, takes: Takes | None = None) -> Read:
    """:func:`decode`, and the channel event inside a resolved customer event parsed too (``InvalidEvent``
    for either that can never be read: a dead letter).

    With ``takes``, a message whose ``headers`` name a kind the consumer does not take is read by its head:
    a non-member's sale is ``Read(None)`` (a kind it ignores); a resolved customer event is the message with
    its record, customer and time, and its event's :class:`EventHead`. The body decides, never the headers:
    one whose head says otherwise than its headers, or is not valid, is read whole (a header cannot make a
    consumer pass over a kind it takes). Without the headers (an older identity), the message is read whole."""
    if takes is not None and headers and (claim := _claim(headers)) is not None and takes.skips(*claim):
        try:
            head = _HEADS.validate_json(raw)
        except ValidationError:
            head = None
        if head is not None and head.kind.encode() == claim[0] and head.event.type.encode() == claim[1]:
            if isinstance(head, _SaleHead):
                return Read(None)
            # Its fields validated already; validating them again from a dict is cheaper than model_construct.
            fields = {"customer_id": head.customer_id, "record_id": head.record_id, "resolved_at": head.resolved_at}
            return Read(CustomerEventResolved.model_validate({**fields, "event": {}}), head.event)
    message = decode(raw)
    if isinstance(message, CustomerEventResolved):
        # A message that nests no deeper than the limit carries an event that cannot either: the event's
        # dict is not walked again for its depth.
        return Read(message, parse_event(message.event, shallow=_shallow(raw), resolved=True))
    return Read(message)


def _claim(headers: list[tuple[str, bytes]]) -> tuple[bytes, bytes] | None:
    kind = event_type = None
    for name, value in headers:
        if name == KIND_HEADER:
            kind = value
        elif name == EVENT_TYPE_HEADER:
            event_type = value
    return None if kind is None or event_type is None else (kind, event_type)


def _shallow(raw: bytes | str) -> bool:
    # Every level of nesting opens with a bracket: few brackets prove shallow nesting.
    text = raw.encode() if isinstance(raw, str) else raw
    return text.count(b"{") + text.count(b"[") <= MAX_EVENT_DEPTH


def encode(message: _Message) -> bytes:
    """The JSON value a message is published as."""
    return message.model_dump_json().encode()


_quoted = encode_basestring_ascii  # a str as ``json.dumps`` writes it (ASCII, escaped)


def resolved_event_json(*, customer_id: str, record_id: str, event_json: str, resolved_at: datetime) -> bytes:
    """``encode(CustomerEventResolved(...))`` for an event already serialised as JSON.

    Identity announces every event it resolves; building the model would parse the event's JSON
    back into a dict only to serialise it again, on the hottest path of the platform.
    """
    # Each string quoted by the function ``json.dumps`` itself uses for one (the same bytes, without
    # building a dict and an encoder twice per event).
    return (f'{{"kind":"customer.event","customer_id":{_quoted(customer_id)},"record_id":{_quoted(record_id)},'
            f'"event":{event_json},"resolved_at":{_quoted(resolved_at.isoformat())}}}').encode()


def audit_message(entry: Any, topic: str) -> Any:
    """The outbox message announcing an audit entry (``shared.access.audit.AuditEntry``) on ``topic``."""
    from shared.storage.base import OutboxMessage

    body = encode(AuditRecorded(**entry.as_dict()))
    return OutboxMessage(topic, body, entry.audit_id.encode())
