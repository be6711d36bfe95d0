"""Loyalty's rows as the API shows them (row -> schema, nothing else)."""

from __future__ import annotations

from services.loyalty.schemas import RewardRead, RewardsPage
from services.loyalty.store import RewardRow


def reward_read(row: RewardRow) -> RewardRead:
    """A reward of the catalogue, with its stock."""
    return RewardRead(**vars(row))


def rewards_page(rows: list[RewardRow], *, offset: int, limit: int) -> RewardsPage:
    """One page of the catalogue."""
    return RewardsPage(items=[reward_read(x) for x in rows], offset=offset, limit=limit)
