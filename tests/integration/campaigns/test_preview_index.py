"""The audience preview from the kept index of customers' facts (issue 16) counts exactly what ``plan()`` counts
over the launch's own reading, on every backend: random histories (merges, unmerges, refunds, consents changing
on every channel, the WeChat follow state, tiers, touches over the cap, future-dated facts, an erasure) written
between previews, and random filters over every criterion, for new drafts and changed audiences."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import get_args
from zoneinfo import ZoneInfo

from services.campaigns import agents
from services.campaigns.config import CampaignsSettings
from services.campaigns.domain.audience import launch_fields, plan
from services.campaigns.domain.definition import AGE_BANDS, Channel, Definition
from services.campaigns.handlers import Deps, commands
from services.campaigns.handlers import launch as launching
from services.campaigns.handlers import preview as fast
from services.campaigns.store import TouchRow
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact, epoch_ms
from shared.settings import Settings
from shared.storage.membership import Membership
from tests.integration.campaigns.scenario import World
from tests.integration.faust_stub import RecordingFaust
from tests.unit.campaigns import factory as f

T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
RECORDS = [f"r{i:03d}" for i in range(120)]
CHANNELS = get_args(Channel)
TEXT = {"gender": ["F", "f", "M", None], "city": ["Shanghai", "shanghai", "Beijing", "Chengdu"],
        "birthday": ["1990-05-20", "2000-02-29", "not a day", "2030-01-01", None,
                     # birthdays on the days previewed, at the ages where a band starts
                     *(f"{2001 - 10 * k}-03-{d}" for k in range(4) for d in (21, 22, 24, 25, 27, 28, 30, 31))]}


def current(index: fast.FactsIndex, store) -> bool:
    """Whether the index holds the store's facts and touches as they are now."""
    return (index.generation, index.touch_generation) == (store.facts_generation(), store.touches_generation())


class History:
    """Random writes to a store, through its own methods (so each is logged as the service logs it)."""

    def __init__(self, store, rng: random.Random) -> None:
        self.store, self.rng, self.n = store, rng, 0
        self.orders: list[tuple[str, str]] = []
        with store.transaction():
            store.apply_memberships([Membership(r, r, self.stamp()) for r in RECORDS])

    def stamp(self) -> str:
        self.n += 1
        return f"2026-03-01T00:00:00.{self.n:06d}Z"

    def moment(self) -> int:
        # Most before day 20, some up to day 60: previews at day 20..50 find some facts dated after them.
        days = 20 if self.rng.random() < 0.98 else 60
        return epoch_ms(T0 + timedelta(minutes=self.rng.randrange(days * 24 * 60)))

    def write(self) -> None:
        rng, store, at = self.rng, self.store, self.stamp()
        n = self.n
        kind = rng.choice(["purchase"] * 4 + ["attribute"] * 6 + ["refund", "tier", "merge", "unmerge", "touches"])
        record = rng.choice(RECORDS)
        with store.transaction():
            if kind == "purchase":
                ms = self.moment()
                day = datetime.fromtimestamp(ms / 1000, UTC).astimezone(SHANGHAI).date().isoformat()
                cats = tuple(rng.sample(["Skincare", "makeup", "FRAGRANCE", "haircare"], rng.randrange(0, 3)))
                store.add_purchases([PurchaseFact(f"pos/{rng.choice(['SH-001', 'SH-002', 'BJ-001'])}", f"p{n}", record,
                                                  f"o{n}", rng.randrange(100, 90_000),
                                                  rng.choice(["SH-001", "SH-002", "BJ-001", None]), ms, day, cats, ())])
                self.orders.append((record, f"o{n}"))
            elif kind == "refund" and self.orders:
                owner, order = rng.choice(self.orders)
                store.add_refunds([RefundFact("pos/SH-001", f"f{n}", owner, order, rng.randrange(100, 50_000),
                                              self.moment())])
            elif kind == "attribute":
                field = rng.choice([f"consent.{c}" for c in CHANNELS] + ["wechat_following", *TEXT])
                value = rng.random() < 0.8 if field not in TEXT else rng.choice(TEXT[field])
                store.put_attributes([(record, [FieldValue(field, value, self.moment(), "web/shop", f"e{n}")])])
            elif kind == "tier":
                store.put_tiers([(record, rng.choice(["A", "a", "B", "C", None]), f"{n:08d}")])
            elif kind == "merge":
                into = store.current_customers([rng.choice(RECORDS)])
                store.apply_memberships([Membership(record, next(iter(into.values())), at)])
            elif kind == "unmerge":
                store.apply_memberships([Membership(record, record, at)])
            elif kind == "touches":  # up to 6 touches around day 30: many customers over a cap of 3
                # On whole hours, as the previews are: some fall exactly on the edges of a contact-cap period.
                store.add_touches([TouchRow(f"t{n}-{k}", "cmp_earlier", record, "sms",
                                            epoch_ms(T0 + timedelta(hours=rng.randrange(5 * 24, 80 * 24))))
                                   for k in range(rng.randrange(1, 7))])

    def erase(self) -> None:
        customer = next(iter(self.store.current_customers([self.rng.choice(RECORDS)]).values()))
        with self.store.transaction():
            self.store.erase_customer(customer, records=[customer], erasure_id=f"er_{self.n}", anon=f"anon_{self.n}")


def _range(rng: random.Random, top: int) -> dict:
    low, high = sorted(rng.sample(range(top), 2))
    return rng.choice([{"min": low}, {"max": high}, {"min": low, "max": high}])


def random_filter(rng: random.Random) -> dict:
    """Each criterion with some chance, values in any letter case."""
    pick = {
        "tiers": lambda: rng.sample(["a", "B", "c", "gold"], rng.randrange(1, 3)),
        "age_bands": lambda: rng.sample(AGE_BANDS, rng.randrange(1, 4)),
        "genders": lambda: rng.sample(["f", "M", "x"], rng.randrange(1, 3)),
        "cities": lambda: rng.sample(["SHANGHAI", "beijing", "Chengdu", "Xi'an"], rng.randrange(1, 3)),
        "home_stores": lambda: rng.sample(["sh-001", "SH-002", "BJ-001"], rng.randrange(1, 3)),
        "categories": lambda: rng.sample(["skincare", "Fragrance", "MAKEUP", "toys"], rng.randrange(1, 3)),
        "recency_days": lambda: _range(rng, 60),
        "frequency": lambda: _range(rng, 6),
        "spend": lambda: {k: f"{v * 100}.00" for k, v in _range(rng, 1500).items()},
    }
    chosen = rng.sample(sorted(pick), rng.randrange(0, 3))
    return {name: pick[name]() for name in chosen}


def deps_for(store, tmp_path, clock: list[datetime]) -> Deps:
    return Deps(store=store, settings=Settings(_env_file=None, data_dir=str(tmp_path)),
                config=CampaignsSettings(_env_file=None, contact_cap=3), clock=lambda: clock[0])


def planned(campaign_id: str, deps: Deps) -> dict:
    """The launch's own evaluation: ``plan()`` over ``customer_facts`` as of the clock."""
    now = deps.clock()
    definition = commands.definition_of(commands.get(campaign_id, deps=deps))
    facts = deps.store.customer_facts(as_of_ms=epoch_ms(now), fields=launch_fields(definition),
                                      categories=definition.audience.categories is not None)
    found = plan(campaign_id, definition, facts, on=now.astimezone(ZoneInfo(deps.settings.timezone)).date(),
                 cap=deps.config.contact_cap,
                 recent_touches=launching.recent_touches(deps=deps, as_of_ms=epoch_ms(now))).tally()
    return launching.summary(found, as_of=now, touches=found.treatment,
                             grants=found.treatment if definition.bonus_multiplier else 0)


def test_the_kept_preview_counts_what_plan_counts_over_random_histories_and_filters(store, tmp_path):
    rng = random.Random(16)
    history = History(store, rng)
    clock = [T0 + timedelta(days=20)]
    deps = deps_for(store, tmp_path, clock)
    drafts: list[str] = []
    seen = []
    for _ in range(1000):
        history.write()
    for step in range(10):
        # Step 8: more writes than the change log keeps (256 generations): the index is read whole again.
        for _ in range(300 if step == 8 else rng.randrange(1, 12) if step else 0):
            history.write()
        if step == 6:
            history.erase()
        clock[0] = T0 + timedelta(days=20 + 3 * step, hours=rng.randrange(24))
        for _ in range(6):
            audience = random_filter(rng)
            channel = rng.choice(CHANNELS)
            if drafts and rng.random() < 0.5:  # a changed audience of a draft previewed before
                cid = rng.choice(drafts)
                commands.edit(cid, changes={"audience": audience, "channel": channel}, deps=deps)
            else:
                definition = Definition(name=f"d{len(drafts)}", objective="promotion", channel=channel,
                                        audience=audience, starts_at=clock[0], ends_at=clock[0] + timedelta(days=9),
                                        control_share=rng.choice(["0.10", "0.35", "0.5"]),
                                        bonus_multiplier=rng.choice([None, "2"]))
                cid = commands.create(definition, by="test", idempotency_key=None, deps=deps)[0].id
                drafts.append(cid)
            expected = planned(cid, deps)
            assert launching.preview(cid, deps=deps) == expected, (step, audience, channel)
            seen.append(expected)
    assert len(seen) == 60 and sum(1 for s in seen if s["treatment"] and s["control"]) >= 20  # not trivially 0
    assert all(sum(1 for s in seen if s["excluded"][r]) >= 10 for r in ("no_consent", "opted_out", "contact_cap"))
    assert current(fast.index_for(store), store)  # brought forward, not rebuilt blind


def test_a_preview_reads_again_only_the_customers_changed_since_the_last(store, tmp_path, monkeypatch):
    history = History(store, random.Random(3))
    for _ in range(300):
        history.write()
    clock = [T0 + timedelta(days=25)]
    deps = deps_for(store, tmp_path, clock)
    definition = Definition(name="d", objective="promotion", channel="sms", audience={"frequency": {"min": 1}},
                            starts_at=clock[0], ends_at=clock[0] + timedelta(days=9))
    cid = commands.create(definition, by="test", idempotency_key=None, deps=deps)[0].id
    kept: list[list[str] | None] = []  # customers read for the index (as of no moment): None for everyone
    real = store.customer_facts

    def noted(**kw):
        if kw["as_of_ms"] == fast.EVER:
            kept.append(None if kw.get("customers") is None else sorted(kw["customers"]))
        return real(**kw)

    monkeypatch.setattr(store, "customer_facts", noted)
    assert launching.preview(cid, deps=deps) == planned(cid, deps)
    everyone = [sorted(store.customer_ids())]  # in one chunk of customers at this size
    assert kept == everyone  # the first preview in a process reads everyone once
    commands.edit(cid, changes={"audience": {"cities": ["shanghai"], "frequency": {"min": 2}}}, deps=deps)
    assert launching.preview(cid, deps=deps) == planned(cid, deps)
    assert kept == everyone  # a changed audience over unchanged facts reads no customer again
    with store.transaction():
        store.put_attributes([("r007", [FieldValue("city", "Shanghai", epoch_ms(T0), "web/shop", "late-e")])])
    assert launching.preview(cid, deps=deps) == planned(cid, deps)
    owner = store.current_customers(["r007"])["r007"]
    assert kept[1:] == [sorted({owner, "r007"})] or kept[1:] == [[owner]]  # the record's customer only


def test_the_contact_cap_counts_touches_up_to_the_edges_of_its_period_as_the_launch_does(store, tmp_path):
    now = T0 + timedelta(days=40)
    deps = deps_for(store, tmp_path, [now])
    span = timedelta(days=deps.config.contact_cap_days)
    with store.transaction():
        store.apply_memberships([Membership(c, c, "t1") for c in ("a", "b")])
        store.put_attributes([(c, [FieldValue("consent.sms", True, epoch_ms(T0), "web/shop", f"e-{c}")])
                              for c in ("a", "b")])
        # a: the touch at the start of the period is outside it (2 in all); b: the one at its end is in it (3).
        store.add_touches([TouchRow(f"t-{c}-{k}", "cmp_0", c, "sms", epoch_ms(at)) for c, edge in
                           (("a", now - span), ("b", now + span))
                           for k, at in enumerate((edge, now - timedelta(days=1), now - timedelta(days=2)))])
    definition = Definition(name="d", objective="promotion", channel="sms", starts_at=now,
                            ends_at=now + timedelta(days=9))
    cid = commands.create(definition, by="test", idempotency_key=None, deps=deps)[0].id
    got = launching.preview(cid, deps=deps)
    assert (got["matched"], got["excluded"]["contact_cap"], got["members"]) == (2, 1, 1)
    assert got == planned(cid, deps)


def test_the_worker_builds_the_index_as_it_starts_and_keeps_it_current_while_people_preview(store, tmp_path,
                                                                                              monkeypatch):
    world = World(store, tmp_path)
    world.feed([m for i in range(30) for m in (f.consent(f"c_{i:03d}", f"cons-{i}", f.at(1), "sms", i % 5 > 0),
                                               f.purchase(f"c_{i:03d}", f"pre-{i}", f.at(2), f"{10 * i}.00"))])
    world.now = f.at(5)
    deps, app = world.service.deps, RecordingFaust()
    agents.register(app, world.service)
    index = fast.index_for(store)
    for task in app.tasks:  # what the worker runs as it starts
        asyncio.run(task())
    assert current(index, store) and int(index.active.sum()) == 30
    body = {"objective": "promotion", "channel": "sms", "starts_at": f.at(10).isoformat(),
            "ends_at": f.at(20).isoformat()}
    draft = world.http.post("/v1/campaigns", json={**body, "name": "draft"}).json()["campaign_id"]
    assert world.http.get(f"/v1/campaigns/{draft}/preview").json()["members"] == planned(draft, deps)["members"] == 24
    other = world.http.post("/v1/campaigns", json={**body, "name": "other"}).json()["campaign_id"]
    assert world.http.post(f"/v1/campaigns/{other}/launch").status_code == 200  # every consenting customer
    _, keep = app.timers["campaigns.preview_index"]
    asyncio.run(keep())  # the next tick reads the launch's touches, not the next preview
    assert current(index, store)
    kept: list = []
    real = store.customer_facts
    monkeypatch.setattr(store, "customer_facts", lambda **kw: kept.append(kw["as_of_ms"]) or real(**kw))
    got = world.http.get(f"/v1/campaigns/{draft}/preview").json()
    assert got == {**planned(draft, deps), "as_of": got["as_of"]} and fast.EVER not in kept
    index.used_at = time.monotonic() - deps.config.preview_keep_s - 1  # nobody previewed for a while
    world.feed([f.purchase("c_001", "late-1", f.at(4), "5.00")])
    asyncio.run(keep())
    assert index.generation < store.facts_generation()  # left for the next preview


def test_a_preview_right_after_a_launch_reads_the_launchs_touches_not_every_member_again(store, tmp_path,
                                                                                          monkeypatch):
    history = History(store, random.Random(5))
    for _ in range(300):
        history.write()
    with store.transaction():  # most customers consent: the launch touches many
        store.put_attributes([(r, [FieldValue("consent.sms", True, epoch_ms(T0 + timedelta(days=19)), "web/shop",
                                              f"consent-{r}")]) for r in RECORDS])
    clock = [T0 + timedelta(days=25)]
    deps = deps_for(store, tmp_path, clock)

    def draft(name: str, audience: dict) -> str:
        definition = Definition(name=name, objective="promotion", channel="sms", audience=audience,
                                starts_at=clock[0], ends_at=clock[0] + timedelta(days=9), control_share="0.2")
        # Named by a key, the campaign's id and so its control group are the same on every run (a random id drew
        # a control group that now and then held every customer the launch would have brought to the cap).
        return commands.create(definition, by="test", idempotency_key=f"test-{name}", deps=deps)[0].id

    launched, other = draft("launched", {}), draft("other", {"frequency": {"min": 1}})
    before = launching.preview(other, deps=deps)
    assert before == planned(other, deps)
    assert launching.launch(launched, deps=deps).launched_now
    assert store.touch_count(launched) >= 30  # more than one customer in REBUILD_SHARE
    facts_read: list[list[str]] = []  # customers whose facts the index read again
    touches_read: list[dict] = []
    real_facts, real_touches = store.customer_facts, store.touch_times

    def noted_facts(**kw):
        if kw["as_of_ms"] == fast.EVER:
            facts_read.append(sorted(kw["customers"]))
        return real_facts(**kw)

    monkeypatch.setattr(store, "customer_facts", noted_facts)
    monkeypatch.setattr(store, "touch_times", lambda **kw: touches_read.append(kw) or real_touches(**kw))
    after = launching.preview(other, deps=deps)
    assert after == planned(other, deps)
    # The launch's touches count against the cap of 3: more customers of the other campaign are left out.
    assert after["excluded"]["contact_cap"] > before["excluded"]["contact_cap"]
    assert facts_read == [] and touches_read == [{"campaigns": [launched]}]
    with store.transaction():
        store.put_attributes([("r007", [FieldValue("city", "Shanghai", epoch_ms(T0), "web/shop", "late-e")])])
    assert launching.preview(other, deps=deps) == planned(other, deps)
    owner = store.current_customers(["r007"])["r007"]
    assert facts_read in ([sorted({owner, "r007"})], [[owner]])  # the record's customer only
    assert touches_read[1:] == [{"customers": facts_read[0]}]
