"""Which campaign grants loyalty honours: a multiplier it can apply over a window that makes sense."""

from __future__ import annotations

from decimal import Decimal

from shared.contract.events import InvalidEvent
from shared.contract.messages import CampaignBonusGranted

MIN_BONUS, MAX_BONUS = Decimal(1), Decimal(100)  # a bonus never takes points; 100 bounds every multiplier


def check_grant(grant: CampaignBonusGranted) -> None:
    """Raise :class:`InvalidEvent`, with every reason, for a grant loyalty cannot honour."""
    # A grant is a campaign's word on points: one loyalty cannot honour (a typo of 500 for 5) is not applied
    # to anyone's points but dead-lettered, with its reason, for the campaign's owner to correct and re-drive.
    reasons = []
    if not (grant.multiplier.is_finite() and MIN_BONUS <= grant.multiplier <= MAX_BONUS):
        reasons.append(f"multiplier: a campaign bonus multiplier is between {MIN_BONUS} and {MAX_BONUS}")
    if grant.ends_at <= grant.starts_at:
        reasons.append("window: ends_at must be after starts_at")
    if reasons:
        raise InvalidEvent("invalid_grant", reasons)
