"""Writes outside the customer-value aggregate that still change its report (issue 15): a new record-to-customer
mapping regroups customers, a new owner moves a customer between stores' reports. The kept ranking lives only
while nothing it reads changed, so each bumps its generation in the same call. One mixin for both adapters,
placed before the membership and owner mixins so that it wraps them."""

from __future__ import annotations

from collections.abc import Iterable

from shared.storage.membership import Membership
from shared.storage.owners import OwnerRow


class RegroupsValue:
    """Wraps ``apply_memberships`` and ``put_owners`` of the store it is mixed into (which has ``bump_value``)."""

    def apply_memberships(self, rows: Iterable[Membership]) -> set[str]:
        """Record newer mappings (see the membership mixin); a change regroups the customer-value report."""
        rows = list(rows)
        touched = super().apply_memberships(rows)  # type: ignore[misc]
        if touched:  # a record kept under its own id until its mapping came is regrouped too
            self.bump_value(touched | {m.record_id for m in rows})  # type: ignore[attr-defined]
        return touched

    def put_owners(self, rows: Iterable[OwnerRow]) -> None:
        """Keep each customer's newest owning store (see the owners mixin); a store's value report changes."""
        rows = list(rows)
        super().put_owners(rows)  # type: ignore[misc]
        if rows:
            self.bump_value({r.customer_id for r in rows})  # type: ignore[attr-defined]
