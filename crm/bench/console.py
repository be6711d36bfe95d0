"""``crm bench console``: every console page's server time over 100,000 customers (issue 16: under 300 ms each).

What is loaded: alerts' store as ``crm bench reports`` loads it (``reports.load``: the customers owned by six
stores with their loyalty tiers, account managers and merged records, and their purchases, refunds, non-members'
sales and surveys kept through the consume path's own calls, so every report aggregate is built by the code that
builds it in production), plus an open alert for one customer in twenty, so the alert inbox has pages to show;
then identity, loyalty and campaigns with the same number of customers through their own consume-path handlers,
and staff's objects made through the APIs (``crm.bench.console_load``: a customer under test with a long
timeline, ledger, points lots and alerts; rewards; a webhook; a campaign launched over every customer two months
ago and 30 drafts). The four services' APIs and the console are served over HTTP on free local ports in this
process, the console with a signed-in company-wide session (the bench's API key as its token), and each page in
``pages()`` (every page a person opens: search, the customer page and its panels, redeem, campaigns, reports,
alerts, every admin page) is opened ``calls`` times after one warm-up; the median and slowest of the console's
own ``Server-Timing`` (the page's whole server time, the APIs' answers included) are printed with the part of it
spent waiting for the services' APIs (and the API waited for longest) and the wall time the client saw, then
the pages over the target.
"""

from __future__ import annotations

import random
import re
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from crm.bench import console_load, reports
from crm.bench.reports import AS_OF, KEY, MONTH, STORE_IDS
from services.alerts.domain.workflow import Alert
from services.alerts.store.sqlite import SqliteAlertsStore

TARGET_MS = 300.0
_DUR = re.compile(r"app;dur=([0-9.]+)")


@dataclass(frozen=True)
class Page:
    """One page as a person opens it: its address, what its answer must hold (``marker``), and for an htmx
    action its method and form (a callable for a form that must differ on each call, as a redemption's key)."""

    name: str
    path: str
    marker: str
    method: str = "GET"
    form: dict | Callable[[], dict] | None = None
    status: int = 200
    htmx: bool = False


def _section(page: str) -> str:
    return f'data-page="{page}"'


# The report pages and the alert inbox (timed since issue 16's first bench).
REPORT_PAGES: list[Page] = [
    Page("reports index", "/reports", _section("reports")),
    Page("store KPIs, one store", f"/reports/kpis?scope=store&store_id=SH-001&month={MONTH}", _section("report-kpis")),
    Page("store KPIs, region (2 stores)", f"/reports/kpis?scope=region&region=south&month={MONTH}",
         _section("report-kpis")),
    Page("store KPIs, company", f"/reports/kpis?scope=company&month={MONTH}", _section("report-kpis")),
    Page("attendance, restaurant with meal periods", f"/reports/attendance?store_id=SH-002&month={MONTH}",
         _section("report-attendance")),
    Page("attendance, page 20", f"/reports/attendance?store_id=SH-002&month={MONTH}&offset=950",
         _section("report-attendance")),
    Page("attendance CSV", f"/reports/attendance.csv?store_id=SH-002&month={MONTH}", "customer_id,visits"),
    Page("customer value, one store", f"/reports/value?store_id=SH-001&as_of={AS_OF}", _section("report-value")),
    Page("customer value, company", f"/reports/value?as_of={AS_OF}", _section("report-value")),
    Page("satisfaction, one store", f"/reports/satisfaction?store_id=SH-001&month={MONTH}",
         _section("report-satisfaction")),
    Page("satisfaction, company", f"/reports/satisfaction?month={MONTH}", _section("report-satisfaction")),
    Page("churn reasons, company", f"/reports/churn-reasons?month={MONTH}", _section("report-churn")),
    Page("alert inbox, company", "/alerts", _section("alert-inbox")),
    Page("alert inbox, one store, open", "/alerts?status=open&store_id=SH-001", _section("alert-inbox")),
]


def _cursor(http: httpx.Client, url: str, pages: int) -> str:
    """The cursor of page ``pages + 1`` of a cursor-paged list of 20 (as the console's "more" buttons hold)."""
    cursor = None
    for _ in range(pages):
        params = {"limit": 20, **({"cursor": cursor} if cursor else {})}
        r = http.get(url, params=params)
        r.raise_for_status()
        cursor = r.json()["next_cursor"]
        if not cursor:
            raise RuntimeError(f"{url} has fewer than {pages + 1} pages")
    return cursor or ""


def pages(platform: console_load.Platform) -> list[Page]:
    """Every console page a person opens, over what was loaded (cursors and ids from the services' APIs)."""
    cid, ids, urls = platform.subject, platform.ids, platform.urls
    digits = console_load.phone(console_load.SUBJECT)
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=600) as http:
        timeline = f"{urls['identity']}/v1/customers/{cid}/timeline"
        ledger = f"{urls['loyalty']}/v1/loyalty/accounts/{cid}/ledger"
        cursors = {"timeline 2": _cursor(http, timeline, 1), "timeline 20": _cursor(http, timeline, 19),
                   "ledger 2": _cursor(http, ledger, 1), "ledger 20": _cursor(http, ledger, 19)}
        letter = http.get(f"{urls['identity']}/v1/deadletters", params={"status": "dead", "limit": 1}).json()
    letter_id = letter["items"][0]["id"]
    rows = "<tr><td>"
    return [
        Page("customer search form", "/customers", _section("customer-search")),
        Page("customer search, phone in another notation", "/customers/search", f"/customers/{cid}", "POST",
             {"q": f"+86 {digits[:3]}-{digits[3:7]}-{digits[7:]}", "kind": "auto"}, 204, True),
        Page("customer 360 (long history)", f"/customers/{cid}", f'data-customer="{cid}"'),
        Page("customer timeline, page 2", f"/customers/{cid}/timeline?cursor={cursors['timeline 2']}", rows),
        Page("customer timeline, page 20", f"/customers/{cid}/timeline?cursor={cursors['timeline 20']}", rows),
        Page("points ledger, page 2", f"/customers/{cid}/ledger?cursor={cursors['ledger 2']}", rows),
        Page("points ledger, page 20", f"/customers/{cid}/ledger?cursor={cursors['ledger 20']}", rows),
        Page("rewards panel", f"/customers/{cid}/rewards", 'data-panel="rewards"'),
        Page("rewards panel, page 2", f"/customers/{cid}/rewards?offset=10", 'data-panel="rewards"'),
        Page("redeem, confirmation", f"/customers/{cid}/rewards/{ids['reward']}/confirm",
             f'data-confirm="{ids["reward"]}"'),
        Page("redeem", f"/customers/{cid}/redemptions", "data-redemption=", "POST",
             lambda: {"reward_id": ids["reward"], "key": uuid.uuid4().hex}, 200, True),
        Page("campaigns list", "/campaigns", _section("campaign-list")),
        Page("campaigns list, drafts, page 2", "/campaigns?status=draft&offset=25", _section("campaign-list")),
        Page("new campaign form", "/campaigns/new", _section("campaign-new")),
        Page("campaign draft with audience preview", f"/campaigns/{ids['draft']}", 'data-panel="preview"'),
        Page("audience builder, preview of a change", f"/campaigns/{ids['draft']}/audience", 'data-panel="preview"',
             "POST", {"home_stores": "SH-001", "frequency_min": "2", "spend_min": "100"}, 200, True),
        Page("campaign (launched over the base)", f"/campaigns/{ids['launched']}", _section("campaign")),
        Page("campaign results", f"/campaigns/{ids['launched']}/results", _section("campaign-results")),
        Page("campaign results, by home store", f"/campaigns/{ids['launched']}/results?by=home_store",
             _section("campaign-results")),
        Page("campaign results CSV", f"/campaigns/{ids['launched']}/results.csv", "treatment"),
        *REPORT_PAGES,
        Page("admin overview", "/admin", _section("admin")),
        Page("admin: identity conflicts", "/admin/conflicts", _section("admin-conflicts")),
        Page("admin: dead letters, identity", "/admin/deadletters?service=identity", _section("admin-deadletters")),
        Page("admin: dead letters, loyalty", "/admin/deadletters?service=loyalty", _section("admin-deadletters")),
        Page("admin: a dead letter's payload (inspect)",
             f"/admin/deadletters/identity/{letter_id}?position=0&status=dead", f'data-payload="{letter_id}"'),
        Page("admin: imports", "/admin/imports", _section("admin-imports")),
        Page("admin: webhooks", "/admin/webhooks", _section("admin-webhooks")),
        Page("admin: a webhook's deliveries", f"/admin/webhooks/{ids['webhook']}", _section("admin-webhook")),
        Page("admin: audit log", "/admin/audit", _section("admin-audit")),
        Page("admin: audit log of the customer", f"/admin/audit?customer_id={cid}", _section("admin-audit")),
        Page("admin: erasure and export", "/admin/privacy", _section("admin-privacy")),
    ]


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


def serve_console(settings, urls: dict[str, str]):
    """The console over HTTP on a free port, calling each service at its URL; its URL, the server, a session
    cookie of the bench's company-wide key, its CSRF token and the app."""
    import uvicorn

    from services.console.app import create_app
    from services.console.config import ConsoleSettings
    from services.console.session import COOKIE, Session, sealer

    console = ConsoleSettings(_env_file=None, identity_url=urls["identity"], loyalty_url=urls["loyalty"],
                              alerts_url=urls["alerts"], campaigns_url=urls["campaigns"], timeout_s=600)
    app = create_app(settings, console=console)
    port = reports._free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_keep_alive=600))  # a slow page must not find its pool closed
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the console did not start")
        time.sleep(0.05)
    session = Session.new(KEY, user="bench", ttl_s=24 * 3600)
    return f"http://127.0.0.1:{port}", server, {COOKIE: session.seal(sealer(settings))}, session.csrf, app


class Waited:
    """Adds up the wall time the console's pages spend waiting for the services' answers, in all and per service
    (pages are opened one at a time, so the sums since ``reset`` are the current page's; a page's calls in
    parallel add up beyond its server time)."""

    def __init__(self, clients) -> None:
        self.ms = 0.0
        self.by: Counter[str] = Counter()  # the same per service, to say which API a slow page waits for
        call = clients.call

        async def timed(service, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return await call(service, *args, **kwargs)
            finally:
                took = (time.perf_counter() - t0) * 1000
                self.ms += took
                self.by[service] += took

        clients.call = timed

    def reset(self) -> None:
        """Start a page's sums."""
        self.ms = 0.0
        self.by = Counter()


@dataclass(frozen=True)
class Timing:
    """One page's figures: server time (median, slowest), of it waiting for the APIs, wall time, size, and
    whether the answer was the page (its status and marker)."""

    page: Page
    server_ms: float
    slowest_ms: float
    api_ms: float
    wall_ms: float
    size: int
    status: int
    answered: bool
    waited_on: str = ""  # the API the page waited for longest (median of its calls), e.g. "alerts 250"

    @property
    def met(self) -> bool:
        """Under the target, and the page it should be."""
        return self.answered and self.server_ms < TARGET_MS


def _open(client: httpx.Client, page: Page, csrf: str) -> httpx.Response:
    headers = {"HX-Request": "true", "X-CSRF-Token": csrf} if page.htmx else {}
    if page.method == "GET":
        return client.get(page.path, headers=headers)
    form = page.form() if callable(page.form) else page.form
    return client.request(page.method, page.path, data=form, headers=headers)


def _answered(r: httpx.Response, page: Page) -> bool:
    # An htmx action that moves to another page says where in a header; every other page holds its marker.
    return r.status_code == page.status and page.marker in (r.headers.get("HX-Redirect") or r.text)


def time_pages(base: str, cookies: dict, csrf: str, every: list[Page], calls: int, waited: Waited) -> list[Timing]:
    """Each page opened ``calls`` times after one warm-up, one at a time."""
    out = []
    with httpx.Client(base_url=base, cookies=cookies, timeout=600) as client:
        for page in every:
            _open(client, page, csrf)
            server, wall, api, answered, by = [], [], [], True, defaultdict(list)
            for _ in range(calls):
                waited.reset()
                t0 = time.perf_counter()
                r = _open(client, page, csrf)
                wall.append((time.perf_counter() - t0) * 1000)
                api.append(waited.ms)
                for service, ms in waited.by.items():
                    by[service].append(ms)
                server.append(float(_DUR.search(r.headers.get("server-timing", "app;dur=0")).group(1)))
                answered = answered and _answered(r, page)
            longest = max(by, key=lambda s: statistics.median(by[s]), default=None)
            out.append(Timing(page, statistics.median(server), max(server), statistics.median(api),
                              statistics.median(wall), len(r.content), r.status_code, answered,
                              f"{longest} {statistics.median(by[longest]):.0f}" if longest else ""))
    return out


def bench(folder: Path, *, customers: int, purchases: int, batch: int, calls: int,
          say: Callable[[str], None]) -> tuple[list[Timing], dict[str, Any]]:
    """Load everything into ``folder``, serve it, time every page; the timings and what was loaded."""
    settings = reports._settings(reports._stores_file(folder)).model_copy(update={"data_dir": str(folder)})
    store = SqliteAlertsStore(folder / "crm.alerts.db")
    t0 = time.perf_counter()
    loaded = reports.load(store, settings, customers=customers, purchases=purchases, batch=batch, seed=16)
    alerts = add_alerts(store, customers, random.Random(16))
    say(f"alerts: {customers:,} customers: {loaded['purchases']:,} purchases, {loaded['refunds']:,} refunds, "
        f"{loaded['sales']:,} non-members' sales, {loaded['surveys']:,} surveys, {alerts:,} open alerts in "
        f"{time.perf_counter() - t0:.0f} s")
    platform = console_load.load_services(settings, store, customers=customers, batch=batch, seed=16, say=say)
    loaded["load_s"] = time.perf_counter() - t0
    say(f"loaded in {loaded['load_s']:.0f} s in all")
    try:
        base, console_server, cookies, csrf, app = serve_console(settings, platform.urls)
        try:
            timings = time_pages(base, cookies, csrf, pages(platform), calls, Waited(app.state.clients))
        finally:
            console_server.should_exit = True
    finally:
        platform.close()
    return timings, loaded


def run(customers: int = 100_000, purchases: int = 1_000_000, batch: int = 1000, calls: int = 5) -> None:
    """Load, serve, time; print the figures and the pages over the target."""
    console = Console(width=200)
    with tempfile.TemporaryDirectory(prefix="crm-bench-console-") as tmp:
        timings, loaded = bench(Path(tmp), customers=customers, purchases=purchases, batch=batch, calls=calls,
                                say=console.print)
    table = Table(title=f"crm bench console: {customers:,} customers, {loaded['purchases']:,} purchases (SQLite; "
                        f"the console's Server-Timing, median of {calls} calls; target {TARGET_MS:.0f} ms)")
    for column in ("page", "server ms (median)", "slowest", "of it the APIs", "longest API ms", "wall ms", "KiB",
                   "status", "target"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for t in timings:
        table.add_row(t.page.name, f"{t.server_ms:.0f}", f"{t.slowest_ms:.0f}", f"{t.api_ms:.0f}", t.waited_on,
                      f"{t.wall_ms:.0f}",
                      f"{t.size / 1024:,.1f}", str(t.status) if t.answered else f"{t.status}, not the page",
                      "met" if t.met else "NOT met")
    console.print(table)
    over = [t for t in timings if not t.met]
    console.print(f"{len(over)} of {len(timings)} pages over {TARGET_MS:.0f} ms or not answered"
                  + (": " + "; ".join(f"{t.page.name} ({t.server_ms:.0f} ms)" for t in over) if over else ""),
                  markup=False)
