"""Issue 15, clv: a fit takes seconds at 100,000 customers, so it is paid once: a request for a model whose fit is in
flight waits for it and answers with the kept fit, and the service fits today's models when it starts."""

from __future__ import annotations

import threading
import time

from services.alerts.reports.clv import clv_model_as_of
from shared import churn
from tests.integration.alerts.reports.test_clv_routes import END, Alerts
from tests.integration.faust_stub import RecordingFaust


def test_a_request_for_a_fit_in_flight_waits_for_it_and_reads_the_kept_fit(tmp_path, monkeypatch):
    alerts = Alerts(tmp_path)
    deps = alerts.service.deps
    fits, answers, others = [], [], []
    real = churn.fit

    def counted(rows, as_of, **kwargs):
        fits.append(as_of)
        if len(fits) == 1:  # while the first fit runs, a second request for the same date comes in
            other = threading.Thread(target=lambda: answers.append(clv_model_as_of(END, deps=deps)))
            other.start()
            others.append(other)
            # Were it not waiting, the second request would start its own fit at once (its read is milliseconds).
            deadline = time.monotonic() + 2
            while len(fits) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        return real(rows, as_of, **kwargs)

    monkeypatch.setattr(churn, "fit", counted)
    first = clv_model_as_of(END, deps=deps)
    others[0].join(timeout=60)
    assert fits == [END]
    assert answers == [first]
    assert (first.bgnbd.customers, first.gamma_gamma.repeat_customers) == (2357, 946)


def test_the_service_fits_todays_models_when_it_starts(tmp_path):
    import asyncio

    from services.alerts import agents

    alerts = Alerts(tmp_path)  # its clock: 23:00 on END
    app = RecordingFaust()
    agents.register(app, alerts.service)
    assert alerts.store.model(END) is None and alerts.store.spend_model(END) is None
    for task in app.tasks:  # what the worker runs as it starts, before any timer's first interval has passed
        asyncio.run(task())
    held, spend = alerts.store.model(END), alerts.store.spend_model(END)
    assert held is not None and spend is not None
    assert (held.model.customers, spend[0].repeat_customers) == (2357, 946)
    body = alerts.api().get("/v1/reports/clv-model").json()  # today's, as the route defaults to: the kept fits
    assert (body["fitted_at"], body["gamma_gamma"]["p"]) == (spend[1], spend[0].p)
