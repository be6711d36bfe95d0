"""A date whose spend model does not converge is remembered: the next request answers 503 at once instead of
trying every penalty again (seconds each at 100,000 customers), like a kept fit."""

from __future__ import annotations

from datetime import date, datetime, time

from services.alerts.reports import clv as clv_report
from tests.integration.alerts.reports.test_clv_routes import ADMIN, END, Alerts, Z, cdnow


def test_a_spend_model_that_did_not_converge_is_not_fitted_again_for_that_date(tmp_path, monkeypatch):
    # The CDNOW purchase days with the same ten trillion yuan on each: under every penalty tried Gamma-Gamma's
    # q stays under 1 (no population mean), so no spend model; BG/NBD, on the days alone, fits as before.
    monkeypatch.setattr("tests.integration.alerts.reports.test_clv_routes.cdnow",
                        lambda: [(c, d, "10000000000000.00") for c, d in sorted({(c, d) for c, d, _ in cdnow()})])
    alerts = Alerts(tmp_path)
    tried: list[date] = []
    real = clv_report.fit_converging

    def counted(rows, as_of):
        tried.append(as_of)
        return real(rows, as_of)

    monkeypatch.setattr(clv_report, "fit_converging", counted)
    api = alerts.api(ADMIN)
    first = api.get("/v1/reports/clv-model", params={"as_of": "1997-09-30"})
    assert (first.status_code, first.json()["error"]["code"]) == (503, "model_did_not_converge"), first.text
    alerts.now = datetime.combine(END, time(23, 30), Z)
    again = api.get("/v1/reports/clv-model", params={"as_of": "1997-09-30"})
    assert (again.status_code, again.json()["error"]["code"]) == (503, "model_did_not_converge")
    assert tried == [date(1997, 9, 30)]  # fitted once; the second answer came from the remembered failure
    assert alerts.store.get_mark("clv_spend_no_convergence:1997-09-30") == "1997-09-30T15:00:00.000000Z"

