"""Events the services publish to each other. Defined once here, frozen, named in the past tense."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class CustomerEventResolved(_Message):
    """A channel event identity has resolved to a customer (``crm.customer.events``).

    ``record_id`` is the customer record the event belongs to; ``customer_id`` the active
    customer that record is part of now. Keep both: an unmerge gives a record back its events.
    """

    kind: Literal["customer.event"] = "customer.event"
    customer_id: str
    record_id: str
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
