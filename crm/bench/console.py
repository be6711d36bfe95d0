"""``crm bench console``: each console page's server time over 100,000 customers (issue 16: under 300 ms each).

What is loaded: alerts' store only, as ``crm bench reports`` loads it (``reports.load``: the customers owned by six
stores with their loyalty tiers, account managers and merged records, and their purchases, refunds, non-members'
sales and surveys kept through the consume path's own calls, so every report aggregate is built by the code that
builds it in production), plus an open alert for one customer in twenty, so the alert inbox has pages to show.
Identity and loyalty are not loaded, so customer search and the customer page are not timed here. Then alerts'
API and the console are served over HTTP on free local ports in this process, the console with a signed-in
company-wide session (the bench's API key as its token), and each page in ``PAGES`` is opened ``calls`` times
after one warm-up; the median and slowest of the console's own ``Server-Timing`` (the page's whole server time,
the API's answer included) are printed with the part of it spent waiting for alerts' API and the wall time the
client saw.
"""

from __future__ import annotations

import random
import re
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from crm.bench import reports
from crm.bench.reports import AS_OF, MONTH, STORE_IDS
from services.alerts.domain.workflow import Alert
from services.alerts.store.sqlite import SqliteAlertsStore

TARGET_MS = 300.0
# The console pages timed (name, path with query): every report page and the alert inbox.
PAGES: list[tuple[str, str]] = [
    ("reports index", "/reports"),
    ("store KPIs, one store", f"/reports/kpis?scope=store&store_id=SH-001&month={MONTH}"),
    ("store KPIs, region (2 stores)", f"/reports/kpis?scope=region&region=south&month={MONTH}"),
    ("store KPIs, company", f"/reports/kpis?scope=company&month={MONTH}"),
    ("attendance, restaurant with meal periods", f"/reports/attendance?store_id=SH-002&month={MONTH}"),
    ("attendance, page 20", f"/reports/attendance?store_id=SH-002&month={MONTH}&offset=950"),
    ("attendance CSV", f"/reports/attendance.csv?store_id=SH-002&month={MONTH}"),
    ("customer value, one store", f"/reports/value?store_id=SH-001&as_of={AS_OF}"),
    ("customer value, company", f"/reports/value?as_of={AS_OF}"),
    ("satisfaction, one store", f"/reports/satisfaction?store_id=SH-001&month={MONTH}"),
    ("satisfaction, company", f"/reports/satisfaction?month={MONTH}"),
    ("churn reasons, company", f"/reports/churn-reasons?month={MONTH}"),
    ("alert inbox, company", "/alerts"),
    ("alert inbox, one store, open", "/alerts?status=open&store_id=SH-001"),
]
_DUR = re.compile(r"app;dur=([0-9.]+)")


def add_alerts(store: SqliteAlertsStore, customers: int, rng: random.Random) -> int:
    """An open alert for one customer in twenty, of the inbox's kinds, over the last month."""
    now = datetime.combine(AS_OF, datetime.min.time(), UTC)
    kinds = [("churn_red", "red"), ("complaint", "red"), ("churn_yellow", "yellow"), ("birthday", "info")]
    rows = []
    for n in range(0, customers, 20):
        kind, severity = rng.choice(kinds)
        at = now - timedelta(minutes=rng.randrange(30 * 24 * 60))
        cid = f"c{n:07d}"
        rows.append(Alert(alert_id=f"al_bench{n:012d}", customer_id=cid, type=kind, severity=severity,
                          status="open", store_id=STORE_IDS[n % len(STORE_IDS)], manager=None,
                          action="call the customer", opened_at=at, updated_at=at, last_trigger_at=at,
                          origin_id=cid))
    with store.transaction():
        store.put_alerts(rows)
    return len(rows)


def serve_console(settings, alerts_url: str):
    """The console over HTTP on a free port, every service's address alerts' (only alerts is called); its URL,
    the server, and a session cookie of the bench's company-wide key."""
    import uvicorn

    from services.console.app import create_app
    from services.console.config import ConsoleSettings
    from services.console.session import COOKIE, Session, sealer

    console = ConsoleSettings(_env_file=None, identity_url=alerts_url, loyalty_url=alerts_url,
                              alerts_url=alerts_url, campaigns_url=alerts_url, timeout_s=600)
    app = create_app(settings, console=console)
    port = reports._free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    cookie = Session.new(reports.KEY, user="bench", ttl_s=24 * 3600).seal(sealer(settings))
    return f"http://127.0.0.1:{port}", server, {COOKIE: cookie}, app


class Waited:
    """Adds up the wall time the console's pages spend waiting for the services' answers (pages are opened one
    at a time, so the sum since ``reset`` is the current page's): the page's own cost is its server time less it."""

    def __init__(self, clients) -> None:
        self.ms = 0.0
        call = clients.call

        async def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                self.ms += (time.perf_counter() - t0) * 1000

        clients.call = timed



def time_pages(base: str, cookies: dict, calls: int, waited: Waited
               ) -> list[tuple[str, float, float, float, float, int, int]]:
    """(name, median server ms, slowest server ms, median ms waiting for the API, median wall ms, bytes, status)
    of each page."""
    out = []
    with httpx.Client(base_url=base, cookies=cookies, timeout=600) as client:
        for name, path in PAGES:
            client.get(path)
            server, wall, api = [], [], []
            for _ in range(calls):
                waited.ms = 0.0
                t0 = time.perf_counter()
                r = client.get(path)
                wall.append((time.perf_counter() - t0) * 1000)
                api.append(waited.ms)
                server.append(float(_DUR.search(r.headers.get("server-timing", "")).group(1)))
            out.append((name, statistics.median(server), max(server), statistics.median(api),
                        statistics.median(wall), len(r.content),
                        r.status_code))
    return out


def run(customers: int = 100_000, purchases: int = 1_000_000, batch: int = 1000, calls: int = 5) -> None:
    """Load, serve, time; print the figures."""
    console = Console(width=200)
    with tempfile.TemporaryDirectory(prefix="crm-bench-console-") as tmp:
        settings = reports._settings(reports._stores_file(Path(tmp)))
        store = SqliteAlertsStore(Path(tmp) / "crm.alerts.db")
        t0 = time.perf_counter()
        loaded = reports.load(store, settings, customers=customers, purchases=purchases, batch=batch, seed=16)
        alerts = add_alerts(store, customers, random.Random(16))
        console.print(f"loaded {customers:,} customers: {loaded['purchases']:,} purchases, {loaded['refunds']:,} "
                      f"refunds, {loaded['sales']:,} non-members' sales, {loaded['surveys']:,} surveys, "
                      f"{alerts:,} open alerts in {time.perf_counter() - t0:.0f} s")
        api, api_server = reports.serve(store, settings)
        base, console_server, cookies, app = serve_console(settings, api)
        try:
            timings = time_pages(base, cookies, calls, Waited(app.state.clients))
        finally:
            console_server.should_exit = True
            api_server.should_exit = True
        table = Table(title=f"crm bench console: {customers:,} customers, {loaded['purchases']:,} purchases (SQLite; "
                            f"the console's Server-Timing, median of {calls} calls; target {TARGET_MS:.0f} ms)")
        for column in ("page", "server ms (median)", "slowest", "of it the API", "wall ms", "KiB", "status",
                       "target"):
            table.add_column(column, justify="left" if column == "page" else "right")
        for name, median, slowest, api_ms, wall, size, status in timings:
            table.add_row(name, f"{median:.0f}", f"{slowest:.0f}", f"{api_ms:.0f}", f"{wall:.0f}",
                          f"{size / 1024:,.1f}", str(status),
                          "met" if median < TARGET_MS and status == 200 else "NOT met")
        console.print(table)
        store.close()
