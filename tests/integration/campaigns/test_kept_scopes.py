"""Issue 16 review (memory): each store manager's results of a campaign are kept apart (their own scope), but
the members as launched, which every scope of a campaign reads whole, are kept once per campaign, not once per
scope: at 82,000 members each scope held another 25 MB, so a few dozen store managers opening one campaign's
results went far over issue 13's 400 MB a process."""

from __future__ import annotations

import random

from services.campaigns.handlers import reports
from shared.kept import kept_for
from shared.storage.owners import OwnerRow
from tests.integration.campaigns.test_results_kept import History, measured_afresh


def test_every_scope_of_a_campaign_keeps_the_members_as_launched_once(store, tmp_path):
    history = History(store, tmp_path, random.Random(9))
    stores = [f"S{n:02d}" for n in range(4)]
    with store.transaction():
        store.put_owners([OwnerRow(c, stores[i % 4], "2026-06-01T00:00:00Z")
                          for i, c in enumerate(history.customers())])
    campaign = history.launch("spring", follow_up=False)
    for scope in [None, *(frozenset({s}) for s in stores)]:
        got = reports.results(campaign, deps=history.deps, owned_by=scope).report
        assert got == measured_afresh(store, campaign, attribution=history.deps.config.attribution, owned_by=scope)
    held = [value for _, value, _ in kept_for(store)._held.values()]  # what this process keeps, per scope
    assert len(held) == 5 and len({id(h.launched) for h in held}) == 1
    assert len(held[0].launched) == len(store.members(campaign))
