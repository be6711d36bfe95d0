"""The BG/NBD churn model on the CDNOW sample shipped in ``lifetimes``: the paper's figures from the model
function on the file, then through the service's store and HTTP routes, with per-customer scores checked
against lifetimes' own summariser and fitter, and the churn_model rule raising exactly the alerts a
separate computation expects."""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import lifetimes
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter
from lifetimes.utils import summary_data_from_transaction_data

from services.alerts.domain.rules import DEFAULT_PARAMS
from shared.churn import fit, histories
from shared.contract.facts import PurchaseFact, to_minor
from tests.integration.alerts.harness import Harness

CDNOW = os.path.join(os.path.dirname(lifetimes.__file__), "datasets", "CDNOW_sample.txt")
CALIBRATION_END = date(1997, 9, 30)
PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
Z = ZoneInfo("Asia/Shanghai")


def cdnow() -> list[tuple[str, date, str]]:
    """(sample id, day, dollar value) per line of the sample."""
    rows = []
    for line in open(CDNOW):
        _, sample_id, day, _, value = line.split()
        rows.append((sample_id, date(int(day[:4]), int(day[4:6]), int(day[6:])), value))
    return rows


def close_to_paper(got: dict) -> None:
    for name, want in PAPER.items():
        assert got[name] == pytest.approx(want, rel=0.01), name


def test_the_model_function_on_the_cdnow_sample_gives_the_papers_figures():
    days = defaultdict(list)
    for sample_id, day, _ in cdnow():
        days[sample_id].append(day)
    model = fit(histories(days, CALIBRATION_END), CALIBRATION_END)
    close_to_paper(vars(model))
    assert (model.customers, model.repeat_purchases) == (2357, 2457)


@pytest.fixture
def seeded(tmp_path) -> Harness:
    h = Harness(tmp_path, datetime.combine(CALIBRATION_END, time(23), Z))
    with h.store.transaction():
        h.store.add_purchases([
            PurchaseFact("pos/CDNOW", f"l{n}", f"c_{sample_id}", f"o{n}", to_minor(Decimal(value)), "CDNOW", 0,
                         day.isoformat()) for n, (sample_id, day, value) in enumerate(cdnow())])
        h.store.set_due({f"c_{s}": 0 for s, _, _ in cdnow()})
    return h


def _reference() -> pd.DataFrame:
    """Per-customer p_alive and 10-week expectation from lifetimes alone (its own summariser and fit)."""
    tx = pd.DataFrame([(f"c_{s}", pd.Timestamp(d)) for s, d, _ in cdnow()], columns=["id", "date"])
    summary = summary_data_from_transaction_data(tx, "id", "date", observation_period_end="1997-09-30", freq="D")
    summary = summary.assign(recency=summary.recency / 7, T=summary["T"] / 7)
    bgf = BetaGeoFitter().fit(summary.frequency, summary.recency, summary["T"])
    summary["p_alive"] = bgf.conditional_probability_alive(summary.frequency, summary.recency, summary["T"])
    summary["expected"] = bgf.conditional_expected_number_of_purchases_up_to_time(
        10, summary.frequency, summary.recency, summary["T"])
    return summary


def test_the_churn_model_routes_fit_cache_and_rank_customers(seeded):
    h = seeded
    r = h.api.get("/v1/alerts/churn-model", params={"as_of": "1997-09-30"})
    assert r.status_code == 200, r.text
    body = r.json()
    close_to_paper(body)
    assert (body["customers"], body["repeat_purchases"], body["as_of"]) == (2357, 2457, "1997-09-30")
    fitted_at = body["fitted_at"]
    h.advance(hours=1)
    assert h.api.get("/v1/alerts/churn-model", params={"as_of": "1997-09-30"}).json()["fitted_at"] == fitted_at

    ref = _reference()
    page = h.api.get("/v1/alerts/churn-model/customers",
                     params={"as_of": "1997-09-30", "weeks": 10, "limit": 5, "offset": 0}).json()
    assert page["total"] == 2357 and len(page["items"]) == 5
    ranks = [x["p_alive"] for x in page["items"]]
    assert ranks == sorted(ranks) and ranks[0] == pytest.approx(ref.p_alive.min(), abs=1e-3)
    one = h.api.get("/v1/alerts/churn-model/customers/c_0004", params={"as_of": "1997-09-30", "weeks": 10}).json()
    [item] = one["items"]
    want = ref.loc["c_0004"]
    assert (item["frequency"], item["recency_weeks"], item["age_weeks"]) == (
        int(want.frequency), pytest.approx(want.recency), pytest.approx(want["T"]))
    assert item["p_alive"] == pytest.approx(want.p_alive, abs=1e-3)
    assert item["expected_purchases"] == pytest.approx(want.expected, abs=1e-3)
    assert h.api.get("/v1/alerts/churn-model/customers/c_nobody", params={"as_of": "1997-09-30"}).status_code == 404
    assert h.api.get("/v1/alerts/churn-model", params={"as_of": "1990-01-01"}).status_code == 404
    # The clock says 1 October 1997 (Shanghai): a model as of a later day would count weeks not yet lived.
    future = h.api.get("/v1/alerts/churn-model", params={"as_of": "1997-10-02"})
    assert future.status_code == 422 and future.json()["error"]["code"] == "as_of_in_future"
    assert h.api.get("/v1/alerts/churn-model/customers", params={"as_of": "1997-10-02"}).status_code == 422


def test_the_scan_alerts_valuable_customers_the_latest_fit_says_are_probably_gone(seeded):
    h = seeded
    h.api.get("/v1/alerts/churn-model", params={"as_of": "1997-09-30"})
    # A replay as of an earlier day never uses a model fitted on purchases made after it.
    h.now = datetime(1997, 9, 1, 15, tzinfo=UTC)
    assert h.scan(full="true")["customers"] == 2357
    assert h.alerts(type="churn_model") == []
    h.now = datetime(1997, 9, 30, 15, tzinfo=UTC)
    result = h.scan()
    assert result["customers"] == 2357
    ref = _reference()
    spend = defaultdict(int)
    for s, d, value in cdnow():
        if d <= CALIBRATION_END:
            spend[f"c_{s}"] += to_minor(Decimal(value))
    params = DEFAULT_PARAMS["churn_model"]
    expected = {c for c, row in ref.iterrows()
                if row.frequency + 1 >= params["min_purchase_days"] and spend[c] >= to_minor(
                    Decimal(params["min_spend"])) and row.p_alive < params["p_alive_below"]}
    got = {a["customer_id"] for a in h.alerts(type="churn_model")}
    assert got == expected and len(got) > 0


def test_paging_through_the_ranking_scores_the_base_once(seeded, monkeypatch):
    h = seeded
    loads = []
    days = h.store.purchase_days

    def counted(**kw):
        loads.append(kw.get("customer_id"))
        return days(**kw)

    monkeypatch.setattr(h.store, "purchase_days", counted)
    params = {"as_of": "1997-09-30", "weeks": 10, "limit": 100}
    pages = [h.api.get("/v1/alerts/churn-model/customers", params={**params, "offset": n}).json()
             for n in (0, 100, 200)]
    assert [len(p["items"]) for p in pages] == [100, 100, 100] and pages[1]["total"] == 2357
    ids = [x["customer_id"] for p in pages for x in p["items"]]
    assert len(set(ids)) == 300  # consecutive pages of one ranking
    fits = loads.count(None)
    assert fits == 2  # one load for the fit, one for the ranking the three pages share
    h.api.get("/v1/alerts/churn-model/customers", params={**params, "weeks": 20})
    assert loads.count(None) == fits + 1  # another horizon is another ranking
