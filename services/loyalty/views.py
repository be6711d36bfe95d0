"""Loyalty's rows as the API shows them (row -> schema, nothing else)."""

from __future__ import annotations

from services.loyalty.schemas import RewardRead, RewardsPage
from services.loyalty.store import RewardRow
from shared.access import masking


def reward_read(row: RewardRow) -> RewardRead:
    """A reward of the catalogue, with its stock."""
    return RewardRead(**vars(row))


def rewards_page(rows: list[RewardRow], *, offset: int, limit: int) -> RewardsPage:
    """One page of the catalogue."""
    return RewardsPage(items=[reward_read(x) for x in rows], offset=offset, limit=limit)


def shown(data: dict, *, admin: bool) -> dict:
    """A ledger, statement or redemptions page as a caller who did not reveal sees it. Loyalty never learns a
    customer's names, so it cannot scrub them from a staff note: below admin a note is withheld (its length
    shown), an admin sees it scrubbed of phones, e-mails and dates; channel ids go through scrub_id."""
    return masking.notes(data, withhold=not admin)
