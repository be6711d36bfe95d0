"""Channel events: CloudEvents 1.0 structured mode, one model per ``type``, discriminated.

Consumers ignore fields they do not know; a type this module does not define is accepted as
an :class:`OtherEvent` (it still has an identity and lands on the customer's timeline).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
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
    model_validator,
)

CHANNELS = ("pos", "wechat", "web")
IDENTIFIER_TYPES = (
    "phone",
    "wechat_unionid",
    "wechat_openid",
    "member_id",
    "web_user_id",
    "email",
    "anonymous_id",
)
CONSENT_PURPOSES = ("sms", "wechat", "email", "mail", "call")
MAX_MONEY = Decimal("100000000")

NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Identity(_Open):
    """Whatever identifiers the channel has; at least one."""

    phone: str | None = Field(None, max_length=40)
    wechat_openid: str | None = Field(None, max_length=128)
    wechat_unionid: str | None = Field(None, max_length=128)
    member_id: str | None = Field(None, max_length=128)
    web_user_id: str | None = Field(None, max_length=128)
    email: str | None = Field(None, max_length=254)
    anonymous_id: str | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _at_least_one(self) -> Identity:
        # Spelled out: this runs for every event and a generator over getattr was a visible cost.
        if not (self.phone or self.wechat_unionid or self.wechat_openid or self.member_id or self.web_user_id
                or self.email or self.anonymous_id):
            raise ValueError(f"identity needs at least one of {', '.join(IDENTIFIER_TYPES)}")
        return self

    def present(self) -> dict[str, str]:
        """The identifiers given, by type, in priority order."""
        return {n: v for n in IDENTIFIER_TYPES if (v := getattr(self, n))}


def _money(value: Any) -> Decimal:
    if isinstance(value, float):
        value = repr(value)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:  # not a ValueError: pydantic would let it escape as a crash, not a reason
        raise ValueError("must be a decimal amount") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_MONEY:
        raise ValueError("must be a non-negative decimal amount")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("must have at most 2 decimal places")
    return amount.quantize(Decimal("0.01"))


class _Data(_Open):
    identity: Identity


class Item(_Open):
    sku: NonEmpty
    category: str | None = None
    quantity: int = Field(1, ge=0)
    unit_price: Decimal | None = None

    @field_validator("unit_price", mode="before")
    @classmethod
    def _price(cls, v: Any) -> Any:
        return None if v is None else _money(v)


class PurchaseData(_Data):
    order_id: NonEmpty
    amount: Decimal
    currency: str = "CNY"
    store_id: str | None = Field(None, max_length=64)
    items: list[Item] = Field(default_factory=list)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> Decimal:
        return _money(v)


class RefundData(_Data):
    order_id: NonEmpty
    amount: Decimal
    store_id: str | None = Field(None, max_length=64)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> Decimal:
        return _money(v)


class ProfileData(_Data):
    name: str | None = Field(None, max_length=128)
    gender: str | None = Field(None, max_length=16)
    birthday: date | None = None
    email: str | None = Field(None, max_length=254)
    city: str | None = Field(None, max_length=128)
    attributes: dict[str, Any] = Field(default_factory=dict)


class ConsentData(_Data):
    purpose: Literal["sms", "wechat", "email", "mail", "call"]
    granted: bool


class ComplaintData(_Data):
    text: str = Field("", max_length=10000)
    store_id: str | None = Field(None, max_length=64)
    severity: str | None = Field(None, max_length=32)


class SurveyData(_Data):
    score: int = Field(ge=0, le=10)
    comment: str | None = Field(None, max_length=10000)


class PageViewData(_Data):
    url: str = Field(max_length=4096)
    product: str | None = Field(None, max_length=256)


class ChannelEventBase(_Open):
    specversion: Literal["1.0"]
    id: NonEmpty
    source: str = Field(pattern=r"^(pos|wechat|web)/[^\s]+$", max_length=256)
    type: str
    time: AwareDatetime
    datacontenttype: str | None = "application/json"

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

    @property
    def channel(self) -> str:
        """``pos``, ``wechat`` or ``web``, from ``source``."""
        return self.source.split("/", 1)[0]

    @property
    def key(self) -> tuple[str, str]:
        """``(source, id)``: what makes two deliveries the same event."""
        return (self.source, self.id)


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


class OtherEvent(ChannelEventBase):
    """A type this platform does not interpret; it still resolves and lands on the timeline."""

    type: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$", max_length=128)
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


def parse_event(raw: bytes | str | dict) -> ChannelEvent:
    """One channel event from JSON bytes or a dict, or InvalidEvent with clean reasons."""
    try:
        if isinstance(raw, dict):
            return _ADAPTER.validate_python(raw)
        return _ADAPTER.validate_json(raw)
    except ValidationError as exc:
        code = "invalid_json" if any(e["type"] == "json_invalid" for e in exc.errors()) else "invalid_event"
        if code == "invalid_json":
            raise InvalidEvent(code, ["value is not valid JSON"]) from None
        raise InvalidEvent(code, _reasons(exc)) from None


def event_time(event: ChannelEventBase) -> datetime:
    """The event's own time (when it happened)."""
    return event.time
