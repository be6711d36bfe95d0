"""Issue 14, through loyalty's consumer and API on each store: a tier a member file says the member held since
long ago is held from the import until the first review after the import, not dropped at the review after
``tier_since``; an event from before ``imported_at`` existed is read as imported at its own moment."""

from __future__ import annotations

from services.loyalty import messages
from services.loyalty.handlers import timers
from shared.contract.messages import CustomerEventResolved
from tests.integration.loyalty.conftest import at, incoming

ADMIN = {"Authorization": "Bearer k-admin"}


def _tier_import(record: str, tier: str, since: str, imported_at: str | None):
    data = {"identity": {"member_id": record}, "tier": tier}
    if imported_at:
        data["imported_at"] = at(imported_at).isoformat()
    event = {"specversion": "1.0", "id": f"m-{record}-tier", "source": "pos/import", "type": "crm.tier_import",
             "time": at(since).isoformat(), "data": data}
    return incoming(CustomerEventResolved(customer_id=record, record_id=record, event=event,
                                          resolved_at=at(imported_at or since)))


def _tier(client, record: str):
    r = client.get(f"/v1/loyalty/accounts/{record}", headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()["tier"]


def test_a_tier_held_since_2021_and_imported_now_holds_until_the_first_review_after_the_import(loyalty):
    loyalty.clock.set("2026-12-05 10:05")
    messages.consume([_tier_import("c_gold", "A", "2021-06-01", "2026-12-05 10:00"),
                      _tier_import("c_old", "A", "2021-06-01", None)], deps=loyalty.service.deps)
    assert _tier(loyalty, "c_gold") == "A"
    assert _tier(loyalty, "c_old") is None  # no import moment: held until 2021-07-01 as before
    loyalty.clock.set("2026-12-31 23:59")
    timers.run_due(deps=loyalty.service.deps)
    assert _tier(loyalty, "c_gold") == "A"
    loyalty.clock.set("2027-01-01 00:01")
    timers.run_due(deps=loyalty.service.deps)  # the review that falls due takes the tier away
    assert _tier(loyalty, "c_gold") is None
