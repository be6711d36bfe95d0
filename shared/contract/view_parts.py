"""The parts of the single customer view other services own, as identity shows them.

Loyalty, alerts and campaigns each publish their part in a ``ViewPartUpdated``; identity keeps the
newest and shows it as is in ``GET /v1/customers/{id}``. Both sides use these models, so a field
renamed by the publisher fails where the part is built, not as a silently empty view. Fields are
listed in the order the view shows them (the JSON is the external contract, key order included).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Part(BaseModel):
    """A typed piece of a view part that still reads as the JSON object it is on the wire: by key
    (``part["open"]``, ``part.get("tier")``) and equal to that object, so a consumer that reads it as
    a mapping (alerts reads loyalty's balance and tier) sees the same values through the type."""

    # No field is unknown: a field renamed on one side is a bug, found where the part is built or
    # dead-lettered where it is received. Defaults only where an empty part means "nothing yet".
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __getitem__(self, name: str) -> Any:
        if name not in type(self).model_fields:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        """The field ``name``, or ``default`` if the part has no such field."""
        return getattr(self, name) if name in type(self).model_fields else default

    def __eq__(self, other: object) -> bool:
        if isinstance(other, dict):
            return self.model_dump(mode="json", exclude_unset=True) == other
        return super().__eq__(other)


class ExpiringPoints(_Part):
    """Points of one lot and when they expire (local time of the platform's zone)."""

    points: int
    expires_at: str


class LoyaltyPart(_Part):
    """Loyalty's part: balance, tier, debt (points refunded after they were spent) and expiring lots."""

    points_balance: int
    tier: str | None = None
    debt: int = 0
    expiring: list[ExpiringPoints] = []


class OpenAlert(_Part):
    """One open or acknowledged alert of the customer."""

    alert_id: str
    type: str
    severity: str
    status: str
    store_id: str | None
    opened_at: str
    action: str
    repeats: int


class AlertsPart(_Part):
    """Alerts' part: the customer's open alerts, most severe first."""

    open: list[OpenAlert] = []


class CampaignItem(_Part):
    """One campaign the customer is in, with the group drawn and whether they converted."""

    campaign_id: str
    name: str
    group: str
    converted: bool
    assigned_at: str


class CampaignsPart(_Part):
    """Campaigns' part: every campaign the customer is in, oldest assignment first."""

    items: list[CampaignItem] = []


PartName = Literal["loyalty", "alerts", "campaigns"]
ViewPart = LoyaltyPart | AlertsPart | CampaignsPart
PART_MODELS: dict[str, type[_Part]] = {"loyalty": LoyaltyPart, "alerts": AlertsPart, "campaigns": CampaignsPart}
