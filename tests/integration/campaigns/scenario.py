"""A hand-built campaign scenario with a known answer, and the world it runs in.

Two overlapping campaigns (A on 3-11 for Shanghai customers, B on 3-15 for gold-tier customers),
two earlier one-customer campaigns that put x3 over the contact cap (2 in this world), customers
without consent or opted out, purchases inside and outside the windows, refunds, a merge of a
treatment member into a phone customer. The expected figures are worked out by hand in the tests.

Customer ids are picked so that the documented split (first 8 bytes of sha256 of
``campaign \\0 customer``, mod 10^6, below the control share in millionths: control) puts each
one in the group the story needs; the pick uses its own implementation of that rule.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient

from services.campaigns.app import create_app
from services.campaigns.config import CampaignsSettings
from services.campaigns.messages import consume as consume_batch
from shared.settings import Settings
from shared.streaming.batch import Incoming
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at


def reference_group(campaign_id: str, customer_id: str, share: float) -> str:
    digest = hashlib.sha256(campaign_id.encode() + b"\x00" + customer_id.encode()).digest()
    return "control" if int(digest[:8].hex(), 16) % 1_000_000 < round(share * 1_000_000) else "treatment"


def campaign_id_for(key: str) -> str:
    """The id a campaign created with an Idempotency-Key gets (so ids can be known before creation)."""
    return "cmp_" + hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass
class World:
    """The campaigns service with a store, a settable clock and a list standing in for Kafka."""

    store: object
    tmp: Path
    attribution: str = "last_touch"
    now: datetime = at(0)
    published: list = field(default_factory=list)
    config: dict = field(default_factory=dict)  # more campaigns settings
    # Called with every batch published, after it is recorded (to act while a relay is under way).
    on_publish: Callable[[list], None] | None = None

    def __post_init__(self) -> None:
        settings = Settings(_env_file=None, data_dir=str(self.tmp), api_keys="op:operator,rd:reader,ad:admin")
        config = CampaignsSettings(_env_file=None, **{"contact_cap": 2, "attribution": self.attribution,
                                                      **self.config})
        self.service = create_app(settings, store=self.store, publish=self._publish, clock=lambda: self.now,
                                  config=config)
        self.http = TestClient(self.service.api, headers={"Authorization": "Bearer op"})

    def _publish(self, out: list) -> None:
        self.published.extend(out)
        if self.on_publish is not None:
            self.on_publish(out)

    def feed(self, messages: list[Incoming]):
        """What the agent does with a batch: apply it, then relay what it produced."""
        outcome = consume_batch(messages, deps=self.service.deps)
        self.service.relay(outcome.outbox)
        return outcome

    def messages(self, topic_end: str) -> list[dict]:
        """Everything published to a topic, decoded, in publish order."""
        return [json.loads(m.value) | {"_key": m.key.decode()} for m in self.published if m.topic.endswith(topic_end)]

    def view_parts(self) -> dict[str, list[dict]]:
        """The newest ``campaigns`` part published per customer (what identity keeps)."""
        best: dict[str, dict] = {}
        for m in self.messages("crm.campaigns.events"):
            if m["kind"] == "view.part" and (m["customer_id"] not in best
                                             or m["version"] > best[m["customer_id"]]["version"]):
                best[m["customer_id"]] = m
        return {c: m["value"]["items"] for c, m in best.items()}


KEYS = {"A": "scenario-A", "B": "scenario-B", "P0": "scenario-P0", "P1": "scenario-P1"}
IDS = {k: campaign_id_for(v) for k, v in KEYS.items()}
SHARES = {"A": 0.5, "B": 0.5, "P0": 0.01, "P1": 0.01}


def pick(role: str, **wants: str) -> str:
    """The first id ``c_<role>_<n>`` that falls in the wanted group of each named campaign."""
    for n in itertools.count():
        cid = f"c_{role}_{n}"
        if all(reference_group(IDS[c], cid, SHARES[c]) == g for c, g in wants.items()):
            return cid
    raise AssertionError("unreachable")


T, C = "treatment", "control"
WHO = {
    "a1": pick("a1", A=T), "a2": pick("a2", A=T), "a3": pick("a3", A=T, B=C), "a4": pick("a4", A=T),
    "w": pick("w", A=T), "n1": pick("n1", A=T),
    "a5": pick("a5", A=C), "a6": pick("a6", A=C), "a7": pick("a7", A=C, B=T), "a8": pick("a8", A=C),
    "b1": pick("b1", B=T), "b2": pick("b2", B=C), "b3": pick("b3", B=T),
    "x1": "c_x1", "x2": "c_x2", "x3": pick("x3", P0=T, P1=T), "n": "c_n", "p": "c_p",
}
YOUNG = {"a1", "a2", "a5", "a6", "n1"}  # born 2004-06-01: under 25 on 2026-03-11; the rest born 1990


def definition(name: str, starts: float, ends: float, **extra) -> dict:
    return {"name": name, "objective": "promotion", "channel": "sms", "starts_at": at(starts).isoformat(),
            "ends_at": at(ends).isoformat(), "attribution_window_days": 7, **extra}


CAMPAIGNS = {
    "P0": definition("P0", 5, 8, control_share="0.01", audience={"home_stores": ["HZ-001"]}),
    "P1": definition("P1", 6, 8, control_share="0.01", audience={"home_stores": ["HZ-001"]}),
    "A": definition("A", 10, 20, control_share="0.5", audience={"cities": ["Shanghai"]}, bonus_multiplier="2",
                    costs={"fixed": "100.00", "per_touch": "0.50"}, offer={"code": "SPRING"}),
    "B": definition("B", 14, 24, control_share="0.5", audience={"tiers": ["gold"]},
                    costs={"fixed": "0.00", "per_touch": "1.00"}),
}


def before_launch() -> list[Incoming]:
    """Consents, profiles, tiers and purchases before the first launch."""
    out: list[Incoming] = []
    homes = {"a5": "SH-002", "a6": "SH-002", "a7": "SH-002", "a8": "SH-002", "x3": "HZ-001",
             "b1": "GZ-001", "b2": "GZ-001", "b3": "GZ-001", "n": "BJ-001", "p": "SH-003"}
    cities = {"b1": "Guangzhou", "b2": "Guangzhou", "b3": "Guangzhou", "n": "Beijing", "p": "Beijing"}
    for role, cid in WHO.items():
        born = "2004-06-01" if role in YOUNG else "1990-01-01"
        out.append(f.profile(cid, f"prof-{role}", at(1), city=cities.get(role, "Shanghai"), birthday=born))
        if role != "x1":
            out.append(f.consent(cid, f"cons-{role}", at(1), "sms", True))
        if role != "n1":
            out.append(f.purchase(cid, f"pre-{role}", at(3), "100.00", store=homes.get(role, "SH-001")))
    out.append(f.consent(WHO["x2"], "cons-x2-withdrawn", at(2), "sms", False))
    out.append(f.purchase(WHO["a2"], "a2-before", at(9), "30.00"))
    for role in ("a3", "a7", "b1", "b2", "b3"):
        out.append(f.tier(WHO[role], "gold", "2026-03-05T00:00:00.000000Z-0002"))
    out.append(f.tier(WHO["b2"], "silver", "2026-03-04T00:00:00.000000Z-0001"))  # older, arrives later
    return out


def after_a() -> list[Incoming]:
    """Between A's launch (day 10) and B's (day 14)."""
    w = WHO
    return [
        f.purchase(w["a2"], "a2-at-touch", at(10), "80.00"),
        f.purchase(w["a1"], "a1-buy", at(11), "200.00"),
        f.purchase(w["n1"], "n1-buy", at(11), "60.00"),
        f.purchase(w["a7"], "a7-buy-1", at(11), "40.00", store="SH-002"),
        f.merged(w["p"], w["w"], [w["w"]], at(12)),
        f.purchase(w["a4"], "a4-buy", at(12), "150.00", order="o-a4"),
        f.refund(w["a4"], "a4-refund", at(13), "o-a4", "150.00"),
        f.purchase(w["a5"], "a5-buy", at(13), "120.00", store="SH-002", order="o-a5"),
        f.refund(w["a5"], "a5-refund", at(13, hours=2), "o-a5", "20.00", store="SH-002"),
        f.purchase(w["p"], "p-buy", at(13), "500.00", store="SH-003"),
    ]


def after_b() -> list[Incoming]:
    """After B's launch (day 14)."""
    w = WHO
    return [
        f.purchase(w["a3"], "a3-buy", at(15), "300.00"),
        f.purchase(w["a7"], "a7-buy-2", at(16), "90.00", store="SH-002"),
        f.purchase(w["a8"], "a8-buy", at(17), "75.00", store="SH-002"),  # A's window closed at day 17
        f.purchase(w["a4"], "a4-buy-2", at(18), "60.00"),
        f.purchase(w["b1"], "b1-buy", at(20), "70.00", store="GZ-001"),
        f.purchase(w["b3"], "b3-buy", at(21), "55.00", store="GZ-001"),  # B's window closed at day 21
    ]


def create_all(world: World) -> None:
    for name, body in CAMPAIGNS.items():
        r = world.http.post("/v1/campaigns", json=body, headers={"Idempotency-Key": KEYS[name]})
        assert r.status_code == 201, r.text
        assert r.json()["campaign_id"] == IDS[name]


def launch(world: World, name: str, day: float) -> dict:
    world.now = at(day)
    r = world.http.post(f"/v1/campaigns/{IDS[name]}/launch")
    assert r.status_code == 200, r.text
    return r.json()


def run(world: World, order: Callable[[list], list] = lambda x: x) -> None:
    """The whole story: events, launches, more events; ``order`` may reorder each phase's events."""
    create_all(world)
    world.feed(order(before_launch()))
    assert launch(world, "P0", 5)["launch"]["touches"] == 1
    assert launch(world, "P1", 6)["launch"]["touches"] == 1
    launch(world, "A", 10)
    world.feed(order(after_a()))
    launch(world, "B", 14)
    world.feed(order(after_b()))
    world.now = at(30)
