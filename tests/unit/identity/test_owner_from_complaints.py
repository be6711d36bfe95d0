"""A customer who never bought belongs to the store of their latest complaint (the store alerts route the
complaint to); identity announces it when the complaint arrives and lets a first purchase take over."""

from __future__ import annotations

import pytest

from services.identity import messages
from shared.contract import topics
from shared.contract.messages import CustomerOwnerChanged, decode
from tests.unit.identity.support import customer_of_phone, event, incoming, make_deps, purchase

LI = "+8613800138000"


@pytest.fixture
def deps(tmp_path):
    return make_deps(tmp_path / "identity.db")


def _owners(outcome) -> list[tuple[str, str | None]]:
    bodies = [decode(m.value) for m in outcome.outbox if m.topic == topics.CUSTOMER_OWNERS]
    assert all(isinstance(b, CustomerOwnerChanged) for b in bodies)
    return [(b.customer_id, b.store_id) for b in bodies]


def complaint(eid: str, store_id: str | None, time: str) -> dict:
    return event(eid, {"phone": LI}, kind="crm.complaint", source="wechat/oa", time=time, text="cold soup",
                 store_id=store_id)


def test_a_complaint_makes_its_store_the_owner_of_a_customer_who_never_bought(deps):
    li = customer_of_phone(LI)
    first = messages.consume(incoming([complaint("e1", "S01", "2026-05-01T10:00:00+08:00")]), deps=deps)
    assert _owners(first) == [(li, "S01")]
    # A later complaint elsewhere moves it; an older one, or one naming no store, does not.
    later = messages.consume(incoming([complaint("e2", "S02", "2026-05-03T10:00:00+08:00"),
                                       complaint("e3", "S03", "2026-05-02T10:00:00+08:00"),
                                       complaint("e4", None, "2026-05-04T10:00:00+08:00")]), deps=deps)
    assert _owners(later) == [(li, "S02")]
    assert deps.store.owners_of([li]) == {li: "S02"}
    # Once they buy, the home store owns them, whatever they complain about next.
    bought = messages.consume(incoming([purchase("e5", {"phone": LI}, "10.00", store_id="S05"),
                                        complaint("e6", "S01", "2026-05-05T10:00:00+08:00")]), deps=deps)
    assert _owners(bought) == [(li, "S05")]
