"""Writes outside the customer-value aggregate that still change its report (issue 15): a new record-to-customer
mapping regroups customers, a new owner moves a customer between stores' reports. The kept ranking lives only
while nothing it reads changed, so each bumps its generation in the same call. One mixin for both adapters,
placed before the membership and owner mixins so that it wraps them (the shared ``Regroups``, on value's log)."""

from __future__ import annotations

from services.alerts.store.sqlite_value import VALUE_LOG
from shared.storage.changes import Regroups


class RegroupsValue(Regroups):
    """Wraps ``apply_memberships`` and ``put_owners`` of the store it is mixed into, bumping value's log."""

    regroups_log = VALUE_LOG
