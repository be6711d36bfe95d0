"""Issue 15, clv: the CDNOW sample sent as channel events through the platform (identity resolves each member to a
customer, alerts keeps the purchases it publishes), then ``GET /v1/reports/clv-model`` as of the end of the 39-week
calibration: Gamma-Gamma's p = 6.25, q = 3.74, gamma = 15.44 within 1% from 946 repeat customers (Fader & Hardie,
"The Gamma-Gamma Model of Monetary Value"), beside the BG/NBD paper's figures."""

from __future__ import annotations

import os
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import lifetimes
import pytest

from services.alerts.config import AlertsConfig
from shared.settings import Settings
from shared.streaming.kafka import ensure_topics
from tests.integration.platform_in_process import Platform, SettableClock

pytestmark = pytest.mark.broker

CDNOW = os.path.join(os.path.dirname(lifetimes.__file__), "datasets", "CDNOW_sample.txt")
END = date(1997, 9, 30)
Z = ZoneInfo("Asia/Shanghai")
ADMIN = "clv-cdnow-admin"


def purchases() -> list[dict]:
    """One channel event per line of the sample: the member's card number, the day at noon, the dollar value."""
    out = []
    for n, line in enumerate(open(CDNOW)):
        _, sample_id, day, _, value = line.split()
        when = datetime.combine(date(int(day[:4]), int(day[4:6]), int(day[6:])), time(12), Z)
        out.append({"specversion": "1.0", "id": f"cdnow-{n}", "source": "pos/CDNOW", "type": "crm.purchase",
                    "time": when.isoformat(), "datacontenttype": "application/json",
                    "data": {"identity": {"member_id": f"CDNOW-{sample_id}"}, "order_id": f"cdnow-{n}",
                             "amount": value, "currency": "CNY", "store_id": "CDNOW"}})
    return out


def test_the_cdnow_sample_sent_through_the_platform_gives_the_gamma_gamma_notes_figures(broker, tmp_path):
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path), api_keys=f"{ADMIN}:admin",
                        pseudonym_secret="clv-cdnow-secret-0123456789")
    ensure_topics(settings)
    clock = SettableClock(datetime.combine(END, time(23), Z))
    platform = Platform(settings, names=("identity", "alerts"), clocks={"alerts": clock},
                        options={"alerts": {"config": AlertsConfig(_env_file=None, scan_enabled=False)}})
    try:
        identity = platform["identity"].api(ADMIN)
        events = purchases()
        assert len(events) == 6919
        for i in range(0, len(events), 1000):
            r = identity.post("/v1/events", json=events[i:i + 1000])
            assert r.status_code == 202, r.text
        platform.settle(timeout=180)
        r = platform["alerts"].api(ADMIN).get("/v1/reports/clv-model", params={"as_of": END.isoformat()})
        assert r.status_code == 200, r.text
        body = r.json()
    finally:
        platform.close()
    for name, want in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert body["gamma_gamma"][name] == pytest.approx(want, rel=0.01), name
    for name, want in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert body["bgnbd"][name] == pytest.approx(want, rel=0.01), name
    assert (body["customers"], body["repeat_customers"]) == (2357, 946)
