"""Monthly statements, from the ledger alone: exact for any past month, because entries are only
ever added and each is dated when it was posted."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.loyalty.domain.model import ADJUST, DEBT, EARN, EXPIRE, REDEEM, REFUND, Entry


@dataclass(frozen=True)
class Statement:
    """One month of an account: closing = opening + earned − refunded − redeemed − expired + adjusted."""

    month: str
    opening: int
    earned: int
    refunded: int
    redeemed: int
    expired: int
    adjusted: int
    closing: int
    expiring: list[tuple[str, int]] = field(default_factory=list)


def statement(month: str, opening: int, entries: list[Entry], expiring: list[tuple[str, int]]) -> Statement:
    """A statement from the balance before the month and the entries posted in it.

    ``adjusted`` holds manual adjustments and the debt bookkeeping (a refund's clawback that the
    balance could not cover, and its repayment), so the closing balance adds up exactly.
    """
    sums = {k: 0 for k in (EARN, REFUND, REDEEM, EXPIRE, ADJUST, DEBT)}
    for e in entries:
        sums[e.kind] += e.points
    closing = opening + sum(sums.values())
    return Statement(month, opening, sums[EARN], -sums[REFUND], -sums[REDEEM], -sums[EXPIRE],
                     sums[ADJUST] + sums[DEBT], closing, expiring)
