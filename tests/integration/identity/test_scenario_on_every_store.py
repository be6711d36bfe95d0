"""A generated multi-channel scenario through identity's handlers on every store backend: the
statistics equal the scenario's own truth, the malformed events are dead letters, a second replay
changes nothing, and both adapters give the same single customer views."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from crm.scenario import first_at, generate
from services.identity import messages
from services.identity.handlers import queries
from tests.integration.shared.backends import mongo_db
from tests.unit.identity.support import incoming, make_deps

SHANGHAI = ZoneInfo("Asia/Shanghai")
PEOPLE = 40


def _feed(deps, scenario, batch: int = 50) -> None:
    raw = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in scenario.events]
    for start in range(0, len(raw), batch):
        messages.consume(incoming(raw[start:start + batch], first_offset=start), deps=deps)


def _views(deps, scenario) -> dict[str, dict]:
    out = {}
    for phone in scenario.truth():
        found = deps.store.find([("phone", phone)])
        view = queries.customer_view(deps.store, found[("phone", phone)].root_id, reveal=True, zone=SHANGHAI)
        out[phone] = view.model_dump(exclude={"updated_at"})
    return out


def test_a_shuffled_scenario_is_exact_on_every_store_and_the_same_on_both_adapters(store, tmp_path):
    scenario = generate(PEOPLE, seed=21, malformed=12)
    assert scenario.duplicates > 0 and len(scenario.events) > PEOPLE * 5
    deps = make_deps(tmp_path, store=store)
    _feed(deps, scenario)
    assert store.customer_count() == PEOPLE
    assert store.dead_letter_count() == 12
    got = _views(deps, scenario)
    want = {phone: {**t, "first_purchase_at": first_at(t["first_purchase_at"]),
                    "last_purchase_at": first_at(t["last_purchase_at"])} for phone, t in scenario.truth().items()}
    assert {phone: v["stats"] for phone, v in got.items()} == want

    _feed(deps, scenario)  # everything a second time
    assert (store.customer_count(), store.dead_letter_count()) == (PEOPLE, 12)
    assert _views(deps, scenario) == got

    with mongo_db("mongomock") as mdb:  # the other adapter, fed the same events, shows the same customers
        from services.identity.store.mongo import MongoIdentityStore
        from services.identity.store.sqlite import SqliteIdentityStore

        other = (MongoIdentityStore(mdb) if isinstance(store, SqliteIdentityStore)
                 else SqliteIdentityStore(tmp_path / "other.db"))
        other_deps = make_deps(tmp_path, store=other)
        _feed(other_deps, scenario)
        assert _views(other_deps, scenario) == got
