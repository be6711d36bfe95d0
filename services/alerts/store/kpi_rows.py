"""The rows store KPIs read (issue 15), the same from either adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class StoreMonth:
    """One store's totals of one month, in fen; ``member_*`` the part with a customer."""

    store_id: str
    month: str
    orders: int
    sales_minor: int
    refunds_minor: int
    member_orders: int
    member_sales_minor: int
    member_refunds_minor: int


class RecordMonth(NamedTuple):
    """One record's purchases at one store in one month: days as bits (day 1 is bit 0), orders, net spend.
    A tuple: a company's month is tens of thousands of them."""

    month: str
    store_id: str
    record_id: str
    days: int
    orders: int
    spend_minor: int
