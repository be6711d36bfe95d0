"""Issue 16 review: what a worker keeps in memory for the preview forgets an erased customer's profile by the
next preview (PIPL: an erasure reaches the in-memory index too, not only the store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.campaigns.config import CampaignsSettings
from services.campaigns.domain.definition import Definition
from services.campaigns.handlers import Deps, commands
from services.campaigns.handlers import launch as launching
from services.campaigns.handlers import preview as fast
from shared.contract.facts import FieldValue, PurchaseFact, epoch_ms
from shared.settings import Settings
from shared.storage.membership import Membership

T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def test_an_erased_customer_leaves_nothing_of_its_profile_in_the_preview_index(store, tmp_path):
    now = T0 + timedelta(days=10)
    deps = Deps(store=store, settings=Settings(_env_file=None, data_dir=str(tmp_path)),
                config=CampaignsSettings(_env_file=None), clock=lambda: now)
    with store.transaction():
        store.apply_memberships([Membership(c, c, "t1") for c in ("erased", "kept")])
        for c, born, city in (("erased", "1987-06-05", "Lhasa"), ("kept", "1990-01-02", "Shanghai")):
            at = epoch_ms(T0)
            store.put_attributes([(c, [FieldValue("birthday", born, at, "web/shop", f"b-{c}"),
                                       FieldValue("city", city, at, "web/shop", f"c-{c}"),
                                       FieldValue("gender", "F", at, "web/shop", f"g-{c}"),
                                       FieldValue("consent.sms", True, at, "web/shop", f"s-{c}")])])
            store.add_purchases([PurchaseFact("pos/SH-001", f"p-{c}", c, f"o-{c}", 12_300, "SH-001", at,
                                              "2026-03-01", ("Skincare",), ())])
    definition = Definition(name="d", objective="promotion", channel="sms", starts_at=now,
                            ends_at=now + timedelta(days=9))
    cid = commands.create(definition, by="test", idempotency_key=None, deps=deps)[0].id
    assert launching.preview(cid, deps=deps)["matched"] == 2
    index = fast.index_for(store)
    at = index.pos["erased"]
    assert index.cols["born_y"][at] == 1987  # held while the customer is
    with store.transaction():
        store.erase_customer("erased", records=["erased"], erasure_id="er1", anon="anon_1")

    assert launching.preview(cid, deps=deps)["matched"] == 1  # the next read
    # Nothing of the erased customer's profile or purchases stays in the worker's memory: every column of its
    # row holds what a customer without facts holds.
    blank = {"newest": 0, "tier": -1, "gender": -1, "city": -1, "home": -1, "born_y": -1, "born_m": 0,
             "born_d": 0, "last": -1, "frequency": 0, "net": 0, "categories": -1,
             **{name: 0 for name in index.cols if name.startswith("consent.")}}
    assert {name: int(col[at]) for name, col in index.cols.items()} == blank
    assert not index.active[at]
    # The city only the erased customer had is no longer kept in clear either.
    assert "lhasa" not in index.words and "shanghai" in index.words
