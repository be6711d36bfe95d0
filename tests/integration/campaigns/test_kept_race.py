"""Issue 16 review: two readers of a campaign's kept results at once. A reader that read the store's generation
just before a write, and reaches the kept results after another reader kept them at the newer generation,
answers with those (they hold every change up to it) instead of measuring all the members again (seconds at
100,000 members) and keeping an older report over a newer one."""

from __future__ import annotations

import random

from services.campaigns.handlers import kept_results, reports
from shared.contract.facts import epoch_ms
from shared.kept import Kept
from tests.integration.campaigns.test_results_kept import DAY, NOW, History, measured_afresh


def test_a_reader_behind_a_newer_kept_report_takes_it_without_measuring_every_member(store, tmp_path, monkeypatch):
    history = History(store, tmp_path, random.Random(5))
    campaign = history.launch("spring", follow_up=False)
    reports.results(campaign, deps=history.deps)  # kept at the launch's generation
    wholes: list[int] = []
    measure_whole = kept_results._whole
    monkeypatch.setattr(kept_results, "_whole", lambda c, *, deps: wholes.append(1) or measure_whole(c, deps=deps))
    read_generation = store.change_generation
    interleaved: list[int] = []

    def generation_then_another_reader() -> int:
        # This reader has read the generation; before it reaches the kept results a write commits and a second
        # reader (another API request, or a timer keeping results warm) keeps them at the newer generation.
        got = read_generation()
        if not interleaved:
            interleaved.append(got)
            with store.transaction():
                store.add_purchases([history._purchase("c_01", epoch_ms(NOW) + DAY)])
            reports.results(campaign, deps=history.deps)
        return got

    monkeypatch.setattr(store, "change_generation", generation_then_another_reader)
    got = reports.results(campaign, deps=history.deps).report
    monkeypatch.setattr(store, "change_generation", read_generation)
    assert interleaved and wholes == []  # both brought forward, neither measured every member
    want = measured_afresh(store, campaign, attribution=history.deps.config.attribution, owned_by=None)
    assert got == want  # the newer report: it holds the write
    assert reports.results(campaign, deps=history.deps).report is got  # and it stays kept
    assert wholes == []


def test_kept_answers_a_request_for_an_older_generation_with_a_newer_value_it_holds():
    kept = Kept()
    assert kept.get("k", 6, lambda: "at 6") == "at 6"
    assert kept.get("k", 5, lambda: "at 5") == "at 6"  # never computed again, never kept over the newer one
    assert kept.latest("k") == (6, "at 6")
    assert kept.get("k", 7, lambda: "at 7") == "at 7"
