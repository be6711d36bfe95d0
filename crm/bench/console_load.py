"""What ``crm bench console`` loads besides alerts' report history: identity, loyalty and campaigns with the
same number of customers, fed through their own consume-path handlers, and the four services' APIs served.

The services are built by their own ``create_app`` (SQLite stores in the bench's folder, a clock the bench
sets) and each one's consumers are exactly the handlers its faust agents declare (``service.runner.consumers``),
run through the service's own ``BatchRunner.run_sync``, which relays what they publish. Instead of a broker,
``Bus`` holds what is published and hands it to every service that consumes its topic, so what each store keeps
is what production keeps. Channel events go in as a till, the web shop and WeChat send them: every customer's
profile (name, gender, birthday, city, home store, phone and member card), an SMS consent for half of them, one
or two purchases each over two years; the customer under test ("the subject") has a long history on top
(``SUBJECT_PURCHASES`` purchases with refunds, page views and surveys: a long timeline, many ledger entries and
points lots); a few hundred events join two customers who each have a phone (identity's conflicts to review)
and a few dozen cannot be read (dead letters).

Alerts' store holds the report history ``crm bench reports`` loads (its own customer ids), so of identity's
announcements alerts consumes only the subject's (their value and alerts panels have data; the report figures
stay those of ``crm bench reports``), plus ``SUBJECT_ALERTS`` alerts of the subject (one active of each kind,
the others resolved).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from crm.bench.reports import AS_OF, FIRST_DAY, STORE_IDS
from crm.replay import topic_for
from services.alerts.domain.workflow import Alert
from shared.settings import Settings
from shared.streaming.batch import Incoming
from shared.streaming.kafka import Outgoing

SUBJECT = 42  # the customer under test's number
SUBJECT_PURCHASES = 600
SUBJECT_ALERTS = 45
CONFLICTS = 300
UNREADABLE = 40
NOW = datetime.combine(AS_OF, datetime.min.time(), UTC) + timedelta(hours=12)
CATEGORIES = ["skincare", "makeup", "fragrance", "haircare"]
CITIES = ["Shanghai", "Beijing", "Guangzhou", "Shenzhen", "Chengdu"]


class Clock:
    """A service's clock that stands still where the bench sets it (a launch in the past, reads at ``NOW``)."""

    def __init__(self, moment: datetime = NOW) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def phone(n: int) -> str:
    """Customer ``n``'s mobile number (never a blocked test value)."""
    return f"139{10_000_000 + n:08d}"


def _event(eid: str, source: str, type_: str, when: datetime, data: dict) -> tuple[datetime, str]:
    body = {"specversion": "1.0", "id": eid, "source": source, "type": type_, "time": when.isoformat(),
            "datacontenttype": "application/json", "data": data}
    return when, json.dumps(body, ensure_ascii=False)


def _purchase(eid: str, who: dict, when: datetime, rng: random.Random, store_id: str) -> tuple[datetime, str]:
    amount = f"{rng.randrange(2_000, 200_000) / 100:.2f}"
    return _event(eid, f"pos/{store_id}", "crm.purchase", when,
                  {"identity": who, "order_id": eid, "amount": amount, "currency": "CNY", "store_id": store_id,
                   "items": [{"sku": f"SK-{rng.randrange(50)}", "category": rng.choice(CATEGORIES), "quantity": 1,
                              "unit_price": amount}]})


def channel_events(customers: int, *, seed: int) -> list[str]:
    """Every channel event of the load, in time order (the unreadable ones last)."""
    rng = random.Random(seed)
    start = datetime.combine(FIRST_DAY, datetime.min.time(), UTC)
    span = (NOW - start).total_seconds()
    out: list[tuple[datetime, str]] = []
    for n in range(customers):
        who = {"phone": phone(n), "member_id": f"M{n:07d}"}
        home = STORE_IDS[n % len(STORE_IDS)]
        joined = start + timedelta(seconds=rng.random() * span * 0.5)
        out.append(_event(f"pf-{n}", "web/shop", "crm.profile", joined,
                          {"identity": who, "name": f"Bench Customer {n}", "gender": rng.choice("FFFM"),
                           "birthday": f"{rng.randrange(1960, 2006)}-{rng.randrange(1, 13):02d}-15",
                           "city": rng.choice(CITIES), "home_store": home}))
        if n % 2 == 0:
            out.append(_event(f"cs-{n}", "web/shop", "crm.consent", joined + timedelta(minutes=1),
                              {"identity": {"phone": phone(n)}, "purpose": "sms", "granted": True}))
        for k in range(1 + rng.randrange(2)):
            when = joined + timedelta(seconds=rng.random() * (NOW - joined).total_seconds())
            out.append(_purchase(f"pu-{n}-{k}", {"phone": phone(n)}, when, rng, home))
    subject = {"phone": phone(SUBJECT)}
    for k in range(SUBJECT_PURCHASES):
        when = start + timedelta(seconds=span * (k + 0.5) / SUBJECT_PURCHASES)
        out.append(_purchase(f"su-{k}", subject, when, rng, STORE_IDS[SUBJECT % len(STORE_IDS)]))
        if k % 20 == 7:
            out.append(_event(f"sr-{k}", f"pos/{STORE_IDS[0]}", "crm.refund", when + timedelta(hours=2),
                              {"identity": subject, "order_id": f"su-{k}", "amount": "10.00"}))
        if k % 10 == 3:
            out.append(_event(f"sv-{k}", "web/shop", "crm.page_view", when - timedelta(minutes=30),
                              {"identity": subject, "url": "https://shop.example/p/SK-1", "product": "SK-1"}))
        if k % 40 == 11:
            out.append(_event(f"ss-{k}", "wechat/oa", "crm.survey", when + timedelta(days=1),
                              {"identity": {**subject, "wechat_openid": "o-bench-subject"}, "score": k % 11}))
    for j in range(min(CONFLICTS, customers // 2)):
        # One person's phone with another's member card: two customers with phones are never merged by an
        # event, so identity keeps a conflict for staff to review.
        a, b = 2 * j + 1, 2 * j + 2
        if SUBJECT in (a, b) or b >= customers:
            continue
        when = start + timedelta(seconds=span * (0.6 + 0.4 * j / CONFLICTS))
        out.append(_purchase(f"cf-{j}", {"phone": phone(a), "member_id": f"M{b:07d}"}, when, rng, STORE_IDS[a % 6]))
    out.sort(key=lambda e: e[0])
    lines = [line for _, line in out]
    lines += [f'{{"specversion": "1.0", "id": "bad-{i}", "source": "pos/SH-001"' for i in range(UNREADABLE)]
    return lines


class Bus:
    """An in-memory broker for one process: what the services publish waits per topic until ``drain`` hands it,
    in batches, to every attached service's handlers of that topic (each service may ``accept`` a subset)."""

    def __init__(self, settings: Settings, *, batch: int) -> None:
        self.settings, self.batch = settings, batch
        self.waiting: dict[str, deque[Outgoing]] = defaultdict(deque)
        self.readers: list[tuple[Any, dict[str, list], Callable[[Outgoing], bool]]] = []
        self.offsets = count()
        self.handled: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def publish(self, messages: list[Outgoing]) -> None:
        """What a service's producer would send (its outbox relay calls this; API routes from server threads)."""
        with self._lock:
            for m in messages:
                self.waiting[m.topic].append(m)

    def attach(self, service: Any, *, accept: Callable[[Outgoing], bool] = lambda _: True) -> None:
        """Feed this service exactly what its faust agents consume."""
        service.faust_app()  # registers its agents, which declare their topics and handlers
        handles: dict[str, list] = defaultdict(list)
        for _, names, handle in service.runner.consumers:
            for topic in names:
                handles[topic].append(handle)
        self.readers.append((service, handles, accept))

    def send(self, lines: list[str]) -> None:
        """Channel event lines, as the channels publish them."""
        self.publish([Outgoing(topic_for(line, self.settings), line.encode()) for line in lines])

    def drain(self) -> int:
        """Hand everything waiting (and what that causes) to its consumers; returns how many messages."""
        done = 0
        while True:
            with self._lock:
                topic = next((t for t, q in self.waiting.items() if q), None)
                if topic is None:
                    return done
                queue = self.waiting[topic]
                chunk = [queue.popleft() for _ in range(min(self.batch, len(queue)))]
            for service, handles, accept in self.readers:
                if topic not in handles:
                    continue
                batch = [Incoming(m.value, topic, 0, next(self.offsets), list(m.headers or []), m.key, time.time())
                         for m in chunk if accept(m)]
                if batch:
                    for handle in handles[topic]:
                        service.runner.run_sync(handle, batch)
                    self.handled[service.name] += len(batch)
            done += len(chunk)


def subject_alerts(customer_id: str, store_id: str) -> list[Alert]:
    """Active and resolved alerts of the subject over the last months (the panel pages them)."""
    kinds = [("churn_red", "red"), ("complaint", "red"), ("churn_yellow", "yellow"), ("birthday", "info")]
    rows = []
    for k in range(SUBJECT_ALERTS):
        kind, severity = kinds[k % len(kinds)]
        at = NOW - timedelta(days=3 * k, minutes=k)
        # One active alert per customer and kind (the store's rule): the newest of each, the rest resolved.
        status = ("open" if k % 2 else "acknowledged") if k < len(kinds) else "resolved"
        rows.append(Alert(alert_id=f"al_subject{k:06d}", customer_id=customer_id, type=kind, severity=severity,
                          status=status, store_id=store_id, manager=None, action="call the customer",
                          opened_at=at, updated_at=at, last_trigger_at=at, origin_id=f"{customer_id}-{k}"))
    return rows


def build_services(settings: Settings, alerts_store: Any, bus: Bus, clocks: dict[str, Clock]) -> dict[str, Any]:
    """The four services by their own ``create_app``, publishing to ``bus``."""
    from services.alerts.app import create_app as alerts_app
    from services.alerts.config import AlertsConfig
    from services.campaigns.app import create_app as campaigns_app
    from services.campaigns.config import CampaignsSettings
    from services.identity.app import create_app as identity_app
    from services.identity.config import IdentityConfig
    from services.loyalty.app import create_app as loyalty_app
    from services.loyalty.config import LoyaltySettings

    return {
        "identity": identity_app(settings, publish=bus.publish, clock=clocks["identity"],
                                 config=IdentityConfig(_env_file=None)),
        "loyalty": loyalty_app(settings, publish=bus.publish, clock=clocks["loyalty"],
                               config=LoyaltySettings(_env_file=None)),
        "alerts": alerts_app(settings, store=alerts_store, publish=bus.publish, clock=clocks["alerts"],
                             config=AlertsConfig(_env_file=None)),
        "campaigns": campaigns_app(settings, publish=bus.publish, clock=clocks["campaigns"],
                                   config=CampaignsSettings(_env_file=None)),
    }


def serve(api: Any, name: str) -> tuple[str, Any]:
    """An ASGI app over HTTP on a free local port, in a thread; (base url, server)."""
    import uvicorn

    from crm.bench.reports import _free_port

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_keep_alive=600))  # a slow page must not find its pool closed
    threading.Thread(target=server.run, daemon=True, name=f"bench-{name}").start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}'s API did not start")
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server



class Platform:
    """The four services loaded and served: their base URLs, the subject's id and what the pages open."""

    def __init__(self, services: dict[str, Any], bus: Bus, clocks: dict[str, Clock]) -> None:
        self.services, self.bus, self.clocks = services, bus, clocks
        self.urls: dict[str, str] = {}
        self.servers: list[Any] = []
        self.subject = ""
        self.ids: dict[str, str] = {}  # what pages name: a draft, a launched campaign, a reward, a webhook

    def serve(self) -> None:
        """Every service's API on a free local port."""
        for name, service in self.services.items():
            self.urls[name], server = serve(service.api, name)
            self.servers.append(server)

    def close(self) -> None:
        """Stop the servers and close the stores."""
        for server in self.servers:
            server.should_exit = True
        for service in self.services.values():
            getattr(service.store, "close", lambda: None)()


def load_services(settings: Settings, alerts_store: Any, *, customers: int, batch: int, seed: int,
                  say: Callable[[str], None]) -> Platform:
    """Identity, loyalty and campaigns loaded with ``customers`` customers through their consume paths (alerts
    with the subject's events only), then served; the console's pages' objects made through the APIs."""
    import httpx

    from crm.bench.reports import KEY

    clocks = {name: Clock() for name in ("identity", "loyalty", "alerts", "campaigns")}
    bus = Bus(settings, batch=batch)
    services = build_services(settings, alerts_store, bus, clocks)
    for name in ("identity", "loyalty", "campaigns"):
        bus.attach(services[name])
    platform = Platform(services, bus, clocks)
    lines = channel_events(customers, seed=seed)
    # The subject's profile goes first, alone: its customer id is then known, and alerts takes that customer's
    # announcements (and only those) from the start.
    head = f'{{"specversion": "1.0", "id": "pf-{SUBJECT}"'
    first = next(i for i, line in enumerate(lines) if line.startswith(head))
    bus.send([lines.pop(first)])
    bus.drain()
    from services.identity.handlers import queries

    platform.subject = queries.lookup({"phone": phone(SUBJECT)}, deps=services["identity"].deps,
                                      reveal=False).customer_id
    bus.attach(services["alerts"], accept=lambda m: m.key == platform.subject.encode())
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(lines), 20 * batch):  # the channels' backlog a slice at a time, like a consumer's lag
        bus.send(lines[start:start + 20 * batch])
        bus.drain()
    say(f"identity, loyalty, campaigns: {len(lines) + 1:,} channel events of {customers:,} customers through their "
        f"consume paths (messages handled: {dict(bus.handled)}) in {time.perf_counter() - t0:.0f} s "
        f"(CPU {time.process_time() - c0:.0f} s)")
    store = services["alerts"].store
    with store.transaction():
        store.put_alerts(subject_alerts(platform.subject, STORE_IDS[SUBJECT % len(STORE_IDS)]))
    platform.serve()
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=600) as http:
        platform.ids.update(_objects(http, platform, bus, say))
    return platform


def _draft(name: str, audience: dict, starts: datetime, days: int = 30) -> dict:
    return {"name": name, "objective": "promotion", "channel": "sms", "audience": audience,
            "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(days=days)).isoformat(),
            "bonus_multiplier": "2", "costs": {"fixed": "500", "per_touch": "0.05"}}


def _ok(r: Any) -> Any:
    if r.status_code >= 400:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    return r.json() if r.content else None


def _objects(http: Any, platform: Platform, bus: Bus, say: Callable[[str], None]) -> dict[str, str]:
    """What the console's pages name, made through the services' APIs as staff make them: rewards, a webhook,
    campaigns (drafts, and one launched two months ago over every customer, measured since)."""
    urls, ids = platform.urls, {}
    for k in range(15):
        ids["reward"] = _ok(http.post(f"{urls['loyalty']}/v1/loyalty/rewards", json={
            "name": f"Reward {k}", "description": "bench", "points_cost": 50 + 10 * k, "stock": 1000}))["reward_id"]
    # A public address (a name would be resolved, and this machine has no DNS); nothing delivers in the bench.
    ids["webhook"] = _ok(http.post(f"{urls['alerts']}/v1/webhooks", json={
        "url": "https://1.1.1.1/crm-bench", "event_types": ["alert.opened", "tier.changed"]}))["webhook_id"]
    t0 = time.perf_counter()
    clock = platform.clocks["campaigns"]
    clock.moment = NOW - timedelta(days=60)
    launched = _ok(http.post(f"{urls['campaigns']}/v1/campaigns", json=_draft(
        "Autumn promotion", {"frequency": {"min": 1}}, clock.moment + timedelta(minutes=1))))
    _ok(http.post(f"{urls['campaigns']}/v1/campaigns/{launched['campaign_id']}/launch"))
    clock.moment = NOW
    ids["launched"] = launched["campaign_id"]
    bus.drain()  # the launch's touches, bonus grants and view parts reach loyalty and identity
    audiences = [{"home_stores": ["SH-001", "SH-002"]}, {"cities": ["Shanghai"], "frequency": {"min": 2}},
                 {"categories": ["skincare"], "spend": {"min": "100.00"}}, {"genders": ["F"], "age_bands": ["25-34"]}]
    for k in range(30):
        ids["draft"] = _ok(http.post(f"{urls['campaigns']}/v1/campaigns", json=_draft(
            f"Draft {k}", audiences[k % len(audiences)], NOW + timedelta(days=2))))["campaign_id"]
    say(f"campaigns: one launched over the base and 30 drafts in {time.perf_counter() - t0:.0f} s")
    return ids
