"""``crm bench console``'s whole code path at a tiny size: every page it times must be the page (its status and
marker), so a page that breaks, or a load that stops giving a page its data, fails here and not in a bench run."""

from __future__ import annotations

import httpx

from crm.bench import console, console_load


def test_every_page_the_bench_times_answers_with_its_page(tmp_path):
    said: list[str] = []

    timings, loaded = console.bench(tmp_path, customers=200, purchases=2000, batch=200, calls=1, say=said.append)

    wrong = [(t.page.name, t.status) for t in timings if not t.answered]
    assert wrong == []
    names = [t.page.name for t in timings]
    assert len(names) == len(set(names)) == len(console.REPORT_PAGES) + 31
    for page in ("customer search, phone in another notation", "customer 360 (long history)",
                 "points ledger, page 20", "customer timeline, page 20", "redeem", "campaign results",
                 "audience builder, preview of a change", "admin: identity conflicts", "admin: audit log"):
        assert page in names
    assert loaded["purchases"] > 0 and any("through their consume paths" in line for line in said)


def test_the_subject_is_in_every_service_and_the_conflicts_and_dead_letters_are_kept(tmp_path):
    from crm.bench.reports import _settings, _stores_file
    from services.alerts.store.sqlite import SqliteAlertsStore

    settings = _settings(_stores_file(tmp_path)).model_copy(update={"data_dir": str(tmp_path)})
    platform = console_load.load_services(settings, SqliteAlertsStore(tmp_path / "crm.alerts.db"), customers=200,
                                          batch=100, seed=3, say=lambda _: None)
    try:
        key = {"Authorization": "Bearer bench-reports-admin"}
        cid = platform.subject
        timeline = httpx.get(f"{platform.urls['identity']}/v1/customers/{cid}/timeline", headers=key,
                             params={"limit": 200}).json()
        ledger = httpx.get(f"{platform.urls['loyalty']}/v1/loyalty/accounts/{cid}/ledger", headers=key,
                           params={"limit": 200}).json()
        alerts = httpx.get(f"{platform.urls['alerts']}/v1/alerts", headers=key,
                           params={"customer_id": cid, "limit": 100}).json()
        conflicts = httpx.get(f"{platform.urls['identity']}/v1/identity/conflicts", headers=key,
                              params={"status": "open", "limit": 200}).json()
        letters = httpx.get(f"{platform.urls['identity']}/v1/deadletters", headers=key, params={"limit": 1}).json()
    finally:
        platform.close()
    assert len(timeline["items"]) == 200 and timeline["next_cursor"]
    assert len(ledger["items"]) == 200 and ledger["next_cursor"]
    assert len(alerts["items"]) >= console_load.SUBJECT_ALERTS
    assert len(conflicts["items"]) == 98  # customers 1..198 in pairs but the subject's (41, 42) and the last (199, 200)
    assert letters["total"] == console_load.UNREADABLE
