"""Every consumed message gets a decided fate: applied, duplicate, ignored, or dead-lettered with its reason."""

from __future__ import annotations

from services.campaigns.config import CampaignsSettings
from services.campaigns.handlers import Deps
from services.campaigns.messages import consume as consume_batch
from shared.contract.messages import AlertChanged, PointsExpired, ViewPartUpdated
from shared.settings import Settings
from shared.streaming.batch import Incoming
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at


def deps(store) -> Deps:
    return Deps(store=store, settings=Settings(_env_file=None), config=CampaignsSettings(_env_file=None),
                clock=lambda: at(0))


def test_fates_of_a_mixed_batch(store):
    d = deps(store)
    good = [f.purchase("c1", "p1", at(1), "10.00"), f.consent("c1", "k1", at(1), "sms", True),
            f.tier("c1", "gold", "0001")]
    broken_event = f.purchase("c2", "p2", at(1), "10.00")
    broken_event = Incoming(broken_event.value.replace(b'"amount":"10.00"', b'"amount":"ten"'), broken_event.topic,
                            0, broken_event.offset)
    garbage = Incoming(b"{not json", "crm.customer.events", 1, 7)
    others = [f.incoming(PointsExpired(entry_id="x", customer_id="c1", points=5, at=at(1)), "crm.loyalty.events"),
              f.incoming(ViewPartUpdated(customer_id="c1", part="alerts", value={}, version="1"), "crm.loyalty.events"),
              f.incoming(AlertChanged(alert_id="a", customer_id="c1", type="t", severity="red", status="open",
                                      at=at(1)), "crm.loyalty.events"),
              Incoming(b'{"kind": "from.the.future", "x": 1}', "crm.loyalty.events", 0, 9)]
    outcome = consume_batch(good + [broken_event, garbage] + others, deps=d)
    assert (outcome.processed, outcome.duplicates, outcome.dead_lettered) == (3, 0, 2)
    assert outcome.counts["ignored"] == 4
    letters = {(x.code, x.offset) for x in store.dead_letters()}
    assert letters == {("invalid_event", broken_event.offset), ("invalid_json", 7)}
    assert [m.topic for m in outcome.outbox] == ["crm.deadletter", "crm.deadletter"]
    [facts] = store.customer_facts(as_of_ms=10**13)
    assert (facts.purchase_count, facts.tier, facts.attributes["consent.sms"].value) == (1, "gold", True)

    again = consume_batch(good, deps=d)
    assert (again.processed, again.duplicates, again.dead_lettered) == (1, 2, 0)  # the tier applies again
    assert store.customer_facts(as_of_ms=10**13)[0].purchase_count == 1
    # The same poison message again is not a second dead letter.
    assert consume_batch([garbage], deps=d).dead_lettered == 0 and store.dead_letter_count() == 2


def test_a_batch_costs_mongodb_the_same_few_round_trips_however_many_events_it_holds(monkeypatch):
    import uuid

    import mongomock

    from services.campaigns.store.mongo import MongoCampaignsStore
    from shared.storage.base import MongoDb

    calls: list[str] = []

    def counted(name: str):
        real = getattr(mongomock.collection.Collection, name)

        def call(self, *args, **kwargs):
            calls.append(name)
            return real(self, *args, **kwargs)

        return call

    for name in ("find", "find_one", "insert_one", "insert_many", "update_one", "update_many", "bulk_write",
                 "aggregate", "delete_many", "count_documents", "distinct"):
        monkeypatch.setattr(mongomock.collection.Collection, name, counted(name))

    def round_trips(n: int) -> int:
        store = MongoCampaignsStore(MongoDb(mongomock.MongoClient()[f"t_{uuid.uuid4().hex[:8]}"]))
        batch = [m for i in range(n) for m in (
            f.purchase(f"c{i}", f"p{i}", at(1), "10.00"), f.refund(f"c{i}", f"r{i}", at(2), f"p{i}", "1.00"),
            f.consent(f"c{i}", f"k{i}", at(1), "sms", True), f.profile(f"c{i}", f"f{i}", at(1), city="Shanghai"),
            f.tier(f"c{i}", "gold", "0001"))]
        batch.append(f.merged("c0", "c1", ["c1"], at(3)))
        calls.clear()
        outcome = consume_batch(batch, deps=deps(store))
        assert (outcome.processed, outcome.dead_lettered) == (5 * n + 1, 0)
        [merged] = [x for x in store.customer_facts(as_of_ms=10**13) if x.customer_id == "c0"]
        assert (merged.purchase_count, merged.refund_minor, merged.tier) == (2, 200, "gold")
        return len(calls)

    assert round_trips(40) == round_trips(5)


def test_a_batch_of_events_and_merges_maps_each_record_by_its_newest_write_and_of_equal_times_the_first(store):
    d = deps(store)
    batch = [
        f.purchase("c2", "p1", at(1), "10.00", record="r2", resolved_at=at(5)),  # r2 -> c2 as of day 5
        f.merged("c1", "c2", ["r2"], at(5)),  # r2 -> c1 as of day 5 too: the write given first is kept
        f.purchase("c3", "p2", at(1), "20.00", record="r3", resolved_at=at(5)),  # r3 -> c3 as of day 5
        f.merged("c1", "c3", ["r3"], at(6)),  # r3 -> c1 as of day 6: newer, it moves
        f.purchase("c4", "p3", at(1), "30.00", record="r4", resolved_at=at(7)),  # r4 -> c4 as of day 7
        f.merged("c1", "c4", ["r4"], at(6)),  # older than what the batch said before it: r4 stays c4's
    ]
    outcome = consume_batch(batch, deps=d)
    assert (outcome.processed, outcome.dead_lettered) == (6, 0)
    spend = {x.customer_id: (x.purchase_count, x.spend_minor) for x in store.customer_facts(as_of_ms=10**13)
             if x.purchase_count}
    assert spend == {"c1": (1, 2000), "c2": (1, 1000), "c4": (1, 3000)}
    assert store.current_customers(["r2", "r3", "r4"]) == {"r2": "c2", "r3": "c1", "r4": "c4"}
    assert store.current_customers([]) == {}  # asking about nobody answers nobody, on every adapter
