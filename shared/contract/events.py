"""Channel events: CloudEvents 1.0 structured mode, one model per ``type``, discriminated.

Consumers ignore fields they do not know; a type this module does not define is accepted as
an :class:`OtherEvent` (it still has an identity and lands on the customer's timeline).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from shared.contract.event_data import CONSENT_PURPOSES as CONSENT_PURPOSES
from shared.contract.event_data import MAX_COVERS as MAX_COVERS
from shared.contract.event_data import MAX_MONEY as MAX_MONEY
from shared.contract.event_data import MAX_REPLY_CHARS as MAX_REPLY_CHARS
from shared.contract.event_data import RFC3339 as _RFC3339
from shared.contract.event_data import ComplaintData as ComplaintData
from shared.contract.event_data import ConsentData as ConsentData
from shared.contract.event_data import Data as _Data
from shared.contract.event_data import DeliveryData as DeliveryData
from shared.contract.event_data import Item as Item
from shared.contract.event_data import NonEmpty as NonEmpty
from shared.contract.event_data import PageViewData as PageViewData
from shared.contract.event_data import PointsOpeningData as PointsOpeningData
from shared.contract.event_data import ProfileData as ProfileData
from shared.contract.event_data import PurchaseData as PurchaseData
from shared.contract.event_data import RefundData as RefundData
from shared.contract.event_data import SurveyData as SurveyData
from shared.contract.event_data import TierImportData as TierImportData
from shared.contract.identity import IDENTIFIER_TYPES as IDENTIFIER_TYPES
from shared.contract.identity import Identifiers as Identifiers
from shared.contract.identity import Identity as Identity
from shared.contract.identity import Open as _Open
from shared.contract.identity import SaleIdentity as SaleIdentity

CHANNELS = ("pos", "wechat", "web")
# Issue 14: a source may also be ``staff/<who>``, on the corrections identity announces as resolved customer
# events; never a channel's: ``parse_event`` refuses it unless the caller reads identity's resolved events.
_CHANNEL_SOURCE = r"^(pos|wechat|web)/[^\s]+$"
_SOURCE = r"^(pos|wechat|web|staff)/[^\s]+$"
# How deeply objects and arrays may nest in an event (the event object itself is level 1). HTTP ingestion
# and every consumer check it the same way, through ``parse_event``, so what one accepts the other does.
MAX_EVENT_DEPTH = 32



class Named:
    """What names a channel event, whole or by its head: its channel and its key (the model has ``source`` and
    ``id``)."""

    @property
    def channel(self) -> str:
        """``pos``, ``wechat`` or ``web``, from ``source`` (``staff`` for a correction identity announces)."""
        return self.source.split("/", 1)[0]  # type: ignore[attr-defined]

    @property
    def key(self) -> tuple[str, str]:
        """``(source, id)``: what makes two deliveries the same event."""
        return (self.source, self.id)  # type: ignore[attr-defined]


class ChannelEventBase(Named, _Open):
    specversion: Literal["1.0"]
    id: NonEmpty
    source: str = Field(pattern=_SOURCE, max_length=256)
    type: str
    time: AwareDatetime
    datacontenttype: str | None = "application/json"

    @field_validator("time", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        # CloudEvents time is an RFC 3339 string; pydantic would otherwise take a number as epoch seconds.
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str) or not _RFC3339.match(value):
            raise ValueError("must be an RFC 3339 timestamp string such as 2026-11-20T10:15:00+08:00")
        return value

    @field_validator("time")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        # Year 1 or 9999 with an offset cannot even be converted to UTC or a store's zone: refuse it
        # here, with a reason, instead of failing later in every consumer.
        try:
            year = value.astimezone(UTC).year
        except OverflowError:
            year = 0
        if not 1900 <= year <= 9998:
            raise ValueError("must be between the years 1900 and 9998")
        return value


class PurchaseEvent(ChannelEventBase):
    type: Literal["crm.purchase"]
    data: PurchaseData


class RefundEvent(ChannelEventBase):
    type: Literal["crm.refund"]
    data: RefundData


class ProfileEvent(ChannelEventBase):
    type: Literal["crm.profile"]
    data: ProfileData


class ConsentEvent(ChannelEventBase):
    type: Literal["crm.consent"]
    data: ConsentData


class ComplaintEvent(ChannelEventBase):
    type: Literal["crm.complaint"]
    data: ComplaintData


class SurveyEvent(ChannelEventBase):
    type: Literal["crm.survey"]
    data: SurveyData


class FollowEvent(ChannelEventBase):
    type: Literal["crm.follow", "crm.unfollow"]
    data: _Data


class PageViewEvent(ChannelEventBase):
    type: Literal["crm.page_view"]
    data: PageViewData


class DeliveryEvent(ChannelEventBase):
    type: Literal["crm.delivery"]
    data: DeliveryData


class PointsOpeningEvent(ChannelEventBase):
    type: Literal["crm.points_opening"]
    data: PointsOpeningData


class TierImportEvent(ChannelEventBase):
    type: Literal["crm.tier_import"]
    data: TierImportData


# What any channel event's ``type`` must be (each type this platform interprets is one of these).
_TYPE = r"^[A-Za-z][A-Za-z0-9_.\-]*$"


class OtherEvent(ChannelEventBase):
    """A type this platform does not interpret; it still resolves and lands on the timeline."""

    type: str = Field(pattern=_TYPE, max_length=128)
    data: _Data


_KNOWN = {
    "crm.purchase": "crm.purchase",
    "crm.refund": "crm.refund",
    "crm.profile": "crm.profile",
    "crm.consent": "crm.consent",
    "crm.complaint": "crm.complaint",
    "crm.survey": "crm.survey",
    "crm.follow": "follow",
    "crm.unfollow": "follow",
    "crm.page_view": "crm.page_view",
    "crm.delivery": "crm.delivery",
    "crm.points_opening": "crm.points_opening",
    "crm.tier_import": "crm.tier_import",
}


def _tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return _KNOWN.get(kind, "other") if isinstance(kind, str) else "other"


ChannelEvent = Annotated[
    Annotated[PurchaseEvent, Tag("crm.purchase")]
    | Annotated[RefundEvent, Tag("crm.refund")]
    | Annotated[ProfileEvent, Tag("crm.profile")]
    | Annotated[ConsentEvent, Tag("crm.consent")]
    | Annotated[ComplaintEvent, Tag("crm.complaint")]
    | Annotated[SurveyEvent, Tag("crm.survey")]
    | Annotated[FollowEvent, Tag("follow")]
    | Annotated[PageViewEvent, Tag("crm.page_view")]
    | Annotated[DeliveryEvent, Tag("crm.delivery")]
    | Annotated[PointsOpeningEvent, Tag("crm.points_opening")]
    | Annotated[TierImportEvent, Tag("crm.tier_import")]
    | Annotated[OtherEvent, Tag("other")],
    Discriminator(_tag),
]

_ADAPTER: TypeAdapter[ChannelEvent] = TypeAdapter(ChannelEvent)


class InvalidEvent(ValueError):
    """An event that cannot be processed, with reasons that never echo its values."""

    def __init__(self, code: str, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.code = code
        self.reasons = reasons


def _reasons(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        # Skip the discriminator tag pydantic puts in the location.
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("crm.", "follow", "other")))
        out.append(f"{loc or 'event'}: {err['msg']}")
    return out


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in a parsed JSON value (a scalar is 0, ``{}`` is 1)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _too_deep() -> InvalidEvent:
    return InvalidEvent("too_deep", [f"event: objects and arrays nest deeper than {MAX_EVENT_DEPTH} levels"])


def check_size(raw: bytes, max_bytes: int) -> None:
    """Raise InvalidEvent ``too_large`` for a message over ``max_bytes`` (checked before any decoding)."""
    if len(raw) > max_bytes:
        raise InvalidEvent("too_large", [f"event: {len(raw)} bytes is more than the maximum of {max_bytes}"])


def check_depth(raw: bytes | str | dict) -> None:
    """Raise InvalidEvent ``too_deep`` when objects and arrays nest deeper than MAX_EVENT_DEPTH."""
    if isinstance(raw, dict):
        if json_depth(raw) > MAX_EVENT_DEPTH:
            raise _too_deep()
        return
    text = raw.encode() if isinstance(raw, str) else raw
    # Every level opens with a bracket, so few brackets prove shallow nesting without a second parse.
    if text.count(b"{") + text.count(b"[") <= MAX_EVENT_DEPTH:
        return
    try:
        parsed = json.loads(text)
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        return  # not JSON at all: the validator below says so
    if json_depth(parsed) > MAX_EVENT_DEPTH:
        raise _too_deep()


def parse_event(raw: bytes | str | dict, *, shallow: bool = False, resolved: bool = False) -> ChannelEvent:
    """One channel event from JSON bytes or a dict, or InvalidEvent with clean reasons; ``shallow`` says
    the caller has proved it nests no deeper than MAX_EVENT_DEPTH (its depth is not checked again);
    ``resolved`` that it is the event of identity's resolved customer event, which may be a staff correction."""
    if not shallow:
        check_depth(raw)
    try:
        if isinstance(raw, dict):
            event = _ADAPTER.validate_python(raw)
        else:
            event = _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        code = "invalid_json" if any(e["type"] == "json_invalid" for e in exc.errors()) else "invalid_event"
        if code == "invalid_json":
            raise InvalidEvent(code, ["value is not valid JSON"]) from None
        # The pattern a channel's source must match is the one a refusal names (staff is not a channel's).
        raise InvalidEvent(code, [r.replace(_SOURCE, _CHANNEL_SOURCE) for r in _reasons(exc)]) from None
    if not resolved and event.source.startswith("staff/"):
        # A channel may not speak for staff: its event is refused as one naming no channel is.
        raise InvalidEvent("invalid_event", [f"source: String should match pattern '{_CHANNEL_SOURCE}'"])
    return event


class EventHead(Named, BaseModel):
    """What a consumer reads of a channel event of a type it does not take (issue 13): the fields that name it,
    validated as a whole event's are; the rest of it is neither parsed into objects nor checked."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: NonEmpty
    source: str = Field(pattern=_SOURCE, max_length=256)
    type: str = Field(pattern=_TYPE, max_length=128)  # as a whole event's: one no event may have is read whole


def event_types(*models: type[ChannelEventBase]) -> frozenset[str]:
    """The ``type`` values these channel event models take (``FollowEvent``: follow and unfollow)."""
    return frozenset(t for model in models for t in model.model_fields["type"].annotation.__args__)  # type: ignore[union-attr]


def non_member(event: ChannelEventBase) -> bool:
    """Whether an event is a sale or refund to a non-member (``data.identity`` is ``{}``, issue 15): it counts
    in store totals only, never as a customer."""
    return isinstance(event, (PurchaseEvent, RefundEvent)) and not event.data.identity.given()


def event_time(event: ChannelEventBase) -> datetime:
    """The event's own time (when it happened)."""
    return event.time
