"""The ``data`` of each channel event type: what every deployment's channels send besides the identity, each
field checked as the contract says (amounts, dates, sizes). ``events.py`` names the events that carry them."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, field_validator

from shared.contract.identity import Identity, SaleIdentity
from shared.contract.identity import Open as _Open

CONSENT_PURPOSES = ("sms", "wechat", "email", "mail", "call")
MAX_MONEY = Decimal("100000000")
MAX_COVERS = 10_000
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")

NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]


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


class Data(_Open):
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


class PurchaseData(Data):
    identity: SaleIdentity  # type: ignore[assignment]  # issue 15: {} is a non-member's sale
    order_id: NonEmpty
    amount: Decimal
    # Which currencies a deployment takes is its setting (CRM_CURRENCIES), checked where events enter.
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$", max_length=3)

    @field_validator("currency", mode="before")
    @classmethod
    def _code(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) and len(v) <= 8 else v
    store_id: str | None = Field(None, max_length=64)
    items: list[Item] = Field(default_factory=list)
    # Issue 15: the party size (人数) the sale served, for the attendance sheet's covers and spend per head. A whole
    # number only (strict: "4" or 4.5 is refused with the field named, never silently read as 4).
    covers: int | None = Field(None, ge=1, le=MAX_COVERS, strict=True)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> Decimal:
        return _money(v)


class RefundData(Data):
    identity: SaleIdentity  # type: ignore[assignment]  # issue 15: {} is a refund to a non-member
    order_id: NonEmpty
    amount: Decimal
    store_id: str | None = Field(None, max_length=64)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> Decimal:
        return _money(v)


class ProfileData(Data):
    name: str | None = Field(None, max_length=128)
    gender: str | None = Field(None, max_length=16)
    birthday: date | None = None
    email: str | None = Field(None, max_length=254)
    city: str | None = Field(None, max_length=128)
    attributes: dict[str, Any] = Field(default_factory=dict)
    # Issue 14 (imports): the store a brand's member system assigned the member to; it owns the customer
    # until the platform's own purchases name a home store (identity's owner rule).
    home_store: str | None = Field(None, min_length=1, max_length=64)


class ConsentData(Data):
    purpose: Literal["sms", "wechat", "email", "mail", "call"]
    granted: bool


class ComplaintData(Data):
    text: str = Field("", max_length=10000)
    store_id: str | None = Field(None, max_length=64)
    severity: str | None = Field(None, max_length=32)


class SurveyData(Data):
    score: int = Field(ge=0, le=10)
    # Issue 15: the store the survey is about (satisfaction counts it there; else at the owning store).
    store_id: str | None = Field(None, max_length=64)
    comment: str | None = Field(None, max_length=10000)


class PageViewData(Data):
    url: str = Field(max_length=4096)
    product: str | None = Field(None, max_length=256)


MAX_REPLY_CHARS = 2000


class DeliveryData(Data):
    """What a channel system reports about a campaign touch (issue 14): ``reply_text`` is the customer's
    own words, personal data (never logged, masked for readers)."""

    touch_id: NonEmpty
    status: Literal["delivered", "failed", "opened", "replied"]
    reason: str | None = Field(None, max_length=256)
    reply_text: str | None = Field(None, max_length=MAX_REPLY_CHARS)


# -- issue 14, member import: what a brand's existing member file brings besides profiles and consents --


class PointsOpeningData(Data):
    """One lot of points a member earned before the platform: it expires by the rule in effect at the
    event's ``time`` (its earn moment), as if it had been earned here."""

    points: int = Field(ge=1, le=100_000_000)


class TierImportData(Data):
    """The tier a member held in the brand's old system since the event's ``time``, imported at
    ``imported_at`` (absent: at ``time``): loyalty keeps it until the first tier review after the later of
    the two, then judges the member by its own rules."""

    tier: str = Field(min_length=1, max_length=32)
    imported_at: AwareDatetime | None = None

    @field_validator("imported_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        # As the event's ``time``: an RFC 3339 string, never a number read as epoch seconds.
        if value is None or isinstance(value, datetime):
            return value
        if not isinstance(value, str) or not RFC3339.match(value):
            raise ValueError("must be an RFC 3339 timestamp string such as 2026-11-20T10:15:00+08:00")
        return value
