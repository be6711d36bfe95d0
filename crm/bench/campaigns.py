"""``crm bench campaigns``: launch a campaign over a whole customer base and time it.

The SQLite store (the embedded default) is seeded directly with generated customers: each one's
record mapping, consents (most granted, some withdrawn, some never asked), profile fields, a loyalty
tier for some, a few purchases and refunds, and for 3% four touches this month (over the contact
cap). Every run launches a fresh campaign on a fresh copy of that base, through the same handler the
API and the scheduler call: evaluate the audience, split it, freeze it, write touches, bonus grants
and view parts to the outbox. The broker is not involved (relaying the outbox happens after the
launch has committed). Then a tenth of the members buy in the campaign's window and its results are timed
(issue 16): the first call (cold), calls with nothing changed (kept), calls right after a one-purchase write, and
a store manager's first call (its store's members, taken from the kept whole campaign).
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from services.campaigns.config import CampaignsSettings
from services.campaigns.domain.definition import Definition
from services.campaigns.handlers import Deps, commands, reports
from services.campaigns.handlers import launch as launching
from services.campaigns.store.sqlite import SqliteCampaignsStore
from shared.contract.facts import FieldValue, PurchaseFact
from shared.settings import Settings
from shared.storage.owners import OwnerRow

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
STORES = ["SH-001", "SH-002", "BJ-001", "GZ-001", "SZ-001", "CD-001"]
CITIES = ["Shanghai", "Beijing", "Guangzhou", "Shenzhen", "Chengdu"]
CATEGORIES = ["skincare", "makeup", "fragrance", "haircare"]


def seed(path: Path, customers: int, *, seed_value: int = 1) -> int:
    """Write ``customers`` generated customers into a campaigns SQLite file; returns the purchases written."""
    rng = random.Random(seed_value)
    store = SqliteCampaignsStore(path)
    memberships, purchases, refunds, attributes, tiers, touches, owners = [], [], [], [], [], [], []
    at = "2026-01-01T00:00:00.000000Z"
    for i in range(customers):
        cid = f"c_{i:08d}"
        memberships.append((cid, cid, at))
        ms = int((NOW - timedelta(days=400)).timestamp() * 1000)
        consent = rng.random()
        if consent < 0.9:
            attributes.append((cid, "consent.sms", json.dumps(consent < 0.85), ms, "web/shop", f"cons-{i}"))
        attributes += [(cid, "city", json.dumps(rng.choice(CITIES)), ms, "wechat/mini", f"prof-{i}"),
                       (cid, "gender", json.dumps(rng.choice("FFFM")), ms, "wechat/mini", f"prof-{i}"),
                       (cid, "birthday", json.dumps(f"{rng.randrange(1960, 2006)}-0{rng.randrange(1, 10)}-15"),
                        ms, "wechat/mini", f"prof-{i}")]
        if rng.random() < 0.03:  # already contacted 4 times this month by earlier campaigns: over the cap
            touches += [(f"t-{i}-{k}", "cmp_earlier", cid, "sms", int((NOW - timedelta(days=3 + 5 * k)).timestamp()
                                                                        * 1000)) for k in range(4)]
        if rng.random() < 0.3:
            tiers.append((cid, rng.choice("ABC"), "2026-05-01T00:00:00.000000Z-000001"))
        home = rng.choice(STORES)
        owners.append(OwnerRow(cid, home, at))
        when = NOW - timedelta(days=rng.randrange(30, 400))
        for k in range(rng.randrange(1, 6)):
            when += timedelta(days=rng.randrange(1, 40))
            if when >= NOW:
                break
            store_id = home if rng.random() < 0.7 else rng.choice(STORES)
            amount = rng.randrange(1_000, 300_000)
            eid = f"p-{i}-{k}"
            purchases.append((f"pos/{store_id}", eid, cid, eid, amount, store_id, int(when.timestamp() * 1000),
                              when.astimezone(SHANGHAI).date().isoformat(), json.dumps([rng.choice(CATEGORIES)])))
            if rng.random() < 0.05:
                refunds.append((f"pos/{store_id}", f"r-{i}-{k}", cid, eid, amount // 2,
                                int(when.timestamp() * 1000) + 86_400_000))
    with store.transaction() as c:
        c.executemany("INSERT INTO memberships VALUES (?,?,?)", memberships)
        c.executemany("INSERT INTO purchases VALUES (?,?,?,?,?,?,?,?,?)", purchases)
        c.executemany("INSERT INTO refunds VALUES (?,?,?,?,?,?)", refunds)
        c.executemany("INSERT INTO attributes VALUES (?,?,?,?,?,?)", attributes)
        c.executemany("INSERT INTO tiers VALUES (?,?,?)", tiers)
        store.put_owners(owners)  # a store manager's results are over the members their store owns
        # Named columns: touches gained a ``step`` (issue 14), which earlier touches take by default.
        c.executemany("INSERT INTO touches (touch_id, campaign_id, customer_id, channel, at_ms) VALUES (?,?,?,?,?)",
                      touches)
    store.close()
    return len(purchases)


def _results_timings(store: SqliteCampaignsStore, deps: Deps, campaign_id: str, *, reads: int = 5) -> dict:
    """Issue 16: the results of a launched campaign (with sales in its window) timed cold (the first call, no
    results kept in this store's process), kept (nothing changed since) and right after a one-purchase write;
    seconds of wall time and of this process's CPU, medians over ``reads`` calls."""
    rng = random.Random(16)
    launched = int(NOW.timestamp() * 1000)
    customers = [m.customer_id for m in store.members(campaign_id, limit=50_000)]

    def sale(n: int) -> PurchaseFact:
        return PurchaseFact("pos/SH-001", f"after-{n}", rng.choice(customers), f"after-{n}",
                            rng.randrange(1_000, 50_000), "SH-001", launched + rng.randrange(1, 10 * 86_400_000),
                            "2026-06-05")

    with store.transaction():  # a tenth of the members bought since the launch
        store.add_purchases([sale(n) for n in range(len(customers) // 10)])

    def timed(owned_by: frozenset[str] | None = None) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        reports.results(campaign_id, deps=deps, owned_by=owned_by)
        return time.perf_counter() - wall, time.process_time() - cpu

    out = {"cold": timed()}
    out["kept"] = _medians([timed() for _ in range(reads)])
    after = []
    for n in range(reads):
        with store.transaction():
            store.add_purchases([sale(1_000_000 + n)])
        after.append(timed())
    out["after one write"] = _medians(after)
    # A store manager's first call: the store's members' parts of the whole campaign's kept results.
    out["a store, first"] = timed(frozenset({STORES[0]}))
    return out


def _medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def _one_launch(base: Path, work: Path, audience: dict, run: int) -> tuple[float, dict, dict]:
    db = work / f"run-{run}.db"
    shutil.copyfile(base, db)
    store = SqliteCampaignsStore(db)
    deps = Deps(store=store, settings=Settings(_env_file=None, data_dir=str(work)),
                config=CampaignsSettings(_env_file=None), clock=lambda: NOW)
    definition = Definition(name=f"bench {run}", objective="promotion", channel="sms", audience=audience,
                            starts_at=NOW, ends_at=NOW + timedelta(days=14), bonus_multiplier="2")
    row, _ = commands.create(definition, by="bench", idempotency_key=None, deps=deps)
    started = time.perf_counter()
    done = launching.launch(row.id, deps=deps)
    launch_s = time.perf_counter() - started
    results = _results_timings(store, deps, row.id)
    figures = dict(done.campaign.launch or {}, outbox=len(done.sent.outbox))
    store.close()
    db.unlink()
    return launch_s, results, figures


def run(customers: int = 100_000, runs: int = 3) -> None:
    """Seed ``customers`` customers, then launch over them ``runs`` times per audience; print medians."""
    with tempfile.TemporaryDirectory(prefix="crm-bench-campaigns-") as tmp:
        work = Path(tmp)
        base = work / "base.db"
        started = time.perf_counter()
        bought = seed(base, customers)
        print(f"seeded {customers:,} customers with {bought:,} purchases in {time.perf_counter() - started:.1f} s")
        audiences = {
            "RFM filter (bought at least once, net spend >= 10 CNY)": {"frequency": {"min": 1},
                                                                      "spend": {"min": "10.00"}},
            "with the churn-model filter (p_alive <= 0.9)": {"frequency": {"min": 1},
                                                             "p_alive": {"max": 0.9}},
        }
        for label, audience in audiences.items():
            launches, reads, figures = [], [], {}
            for i in range(runs):
                launch_s, results, figures = _one_launch(base, work, audience, i)
                launches.append(launch_s)
                reads.append(results)
            print(f"\nlaunch over {customers:,} customers, {label}")
            print(f"  audience {figures['matched']:,} matched, {figures['members']:,} members "
                  f"({figures['treatment']:,} treatment / {figures['control']:,} control), excluded "
                  + ", ".join(f"{k} {v:,}" for k, v in figures["excluded"].items()))
            print(f"  outbox rows written in the launch transaction: {figures['outbox']:,}")
            print(f"  launch time: median {statistics.median(launches):.2f} s over {runs} runs "
                  f"(min {min(launches):.2f}, max {max(launches):.2f}); target < 60 s")
            print(f"  results (lift, breakdowns, daily), a tenth of the members bought since the launch; median over"
                  f" {runs} runs of the per-run figures, wall / CPU of this process; target < 0.2 s:")
            for what in ("kept", "after one write", "a store, first", "cold"):
                wall = statistics.median(r[what][0] for r in reads) * 1000
                cpu = statistics.median(r[what][1] for r in reads) * 1000
                print(f"    {what:<16} {wall:8.1f} ms  (CPU {cpu:.1f} ms)")
        print_previews(base, work, customers)


def preview_timings(base: Path, work: Path, runs: int = 5) -> dict[str, list[tuple[float, float]]]:
    """Time the audience preview (the API's ``/preview``) over a copy of the base, (CPU, wall) in ms: the first
    in a process (its index of customers' facts is built), then per run a new draft's, a changed audience of
    that draft, a preview after a write that touches three customers, and once a preview right after another
    campaign launched over every customer who bought (its touches count against the contact cap)."""
    db = work / "preview.db"
    shutil.copyfile(base, db)
    store = SqliteCampaignsStore(db)
    deps = Deps(store=store, settings=Settings(_env_file=None, data_dir=str(work)),
                config=CampaignsSettings(_env_file=None), clock=lambda: NOW)
    timings: dict[str, list[tuple[float, float]]] = {"first in a process": [], "new draft": [], "changed audience": [],
                                       "after a write to 3 customers": [], "right after a launch": []}

    def timed(label: str, campaign_id: str) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        launching.preview(campaign_id, deps=deps)
        timings[label].append(((time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000))

    def draft(run: int) -> str:
        definition = Definition(name=f"preview {run}", objective="promotion", channel="sms",
                                audience={"home_stores": ["SH-001", "SH-002"]}, starts_at=NOW,
                                ends_at=NOW + timedelta(days=14))
        return commands.create(definition, by="bench", idempotency_key=None, deps=deps)[0].id

    timed("first in a process", draft(-1))
    for run in range(runs):
        campaign_id = draft(run)
        timed("new draft", campaign_id)
        commands.edit(campaign_id, changes={"audience": {"cities": ["Shanghai"], "frequency": {"min": 2},
                                                         "spend": {"min": "100.00"}, "age_bands": ["25-34"]}},
                      deps=deps)
        timed("changed audience", campaign_id)
        at = int(NOW.timestamp() * 1000) - 1000
        with store.transaction():
            store.put_attributes([(f"c_{run * 3 + k:08d}", [FieldValue("city", "Beijing", at, "web/shop",
                                                                        f"bench-{run}-{k}")]) for k in range(3)])
        timed("after a write to 3 customers", campaign_id)
    launched = commands.create(Definition(name="launched", objective="promotion", channel="sms",
                                          audience={"frequency": {"min": 1}}, starts_at=NOW,
                                          ends_at=NOW + timedelta(days=14)), by="bench", idempotency_key=None,
                               deps=deps)[0].id
    launching.launch(launched, deps=deps)
    timed("right after a launch", campaign_id)
    store.close()
    db.unlink()
    return timings


def print_previews(base: Path, work: Path, customers: int) -> None:
    """Print the preview's timings (medians) over ``customers`` customers."""
    timings = preview_timings(base, work)
    print(f"\naudience preview over {customers:,} customers (target < 200 ms each)")
    for label, values in timings.items():
        cpu, wall = [v[0] for v in values], [v[1] for v in values]
        print(f"  {label}: median {statistics.median(cpu):.0f} ms CPU (max {max(cpu):.0f}), "
              f"{statistics.median(wall):.0f} ms wall, over {len(values)}")
