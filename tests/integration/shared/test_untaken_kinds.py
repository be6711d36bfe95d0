"""Issue 13: a downstream service reads only the head of a channel event of a type it does not take.

Identity names each customer event's kind and channel event type in headers; loyalty, alerts and campaigns
each read the events they take whole and, of any other, the record, customer, time and key only. What a
user notices must not change: the same counts, the same tables, the same messages published; an event
without the headers (an older identity, a replay) is read whole; a header that lies about its body is
overruled by the body."""

from __future__ import annotations

import importlib
import itertools
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

import shared.contract.messages as messages
from shared.contract.events import ChannelEventBase
from shared.contract.messages import CustomerEventResolved, encode, kind_headers, read
from shared.settings import Settings
from shared.streaming.batch import Incoming

AT = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)
SERVICES = ("loyalty", "alerts", "campaigns")
_offsets = itertools.count()


class Running:
    """A service built as ``crm up`` builds it (SQLite in a temp dir, a fixed clock), fed like its agents."""

    def __init__(self, name: str, data_dir: Path) -> None:
        self.name, self.data_dir, self.published = name, data_dir, []
        app = importlib.import_module(f"services.{name}.app")
        self.service = app.create_app(Settings(_env_file=None, data_dir=str(data_dir)), publish=self.published.extend,
                                      clock=lambda: AT)
        self.service.faust_app()  # registers the agents, which declare their topics

    def feed(self, *messages: Incoming) -> dict[str, int]:
        """Each message to every agent of its topic; the outcomes' counts, summed."""
        counts: dict[str, int] = {}
        for _, topics, handle in self.service.runner.consumers:
            mine = [m for m in messages if m.topic in topics]
            if mine:
                outcome = self.service.runner.run_sync(handle, mine)
                for what in ("processed", "duplicates", "dead_lettered"):
                    counts[what] = counts.get(what, 0) + getattr(outcome, what)
                for what, n in outcome.counts.items():
                    counts[what] = counts.get(what, 0) + n
        return counts

    def rows(self, table: str) -> list[tuple]:
        with sqlite3.connect(self.data_dir / f"crm.{self.name}.db") as db:
            return sorted(db.execute(f'SELECT * FROM "{table}"'))  # noqa: S608 (a table name of the test's own)

    def bodies(self) -> list[tuple[str, bytes | None]]:
        """What it published (topic, key): bodies carry wall-clock versions."""
        return [(m.topic, m.key) for m in self.published]


def resolved(type_: str, eid: str, data: dict, *, customer: str = "c_ann", record: str = "c_ann_rec",
             headers: list[tuple[str, bytes]] | None = None) -> Incoming:
    """A channel event as identity publishes it once resolved (with the headers identity adds, unless given)."""
    event = {"specversion": "1.0", "id": eid, "source": "pos/SH-001", "type": type_,
             "time": "2026-11-20T10:15:00+08:00", "data": {"identity": {"member_id": "M-ann"}, **data}}
    body = encode(CustomerEventResolved(customer_id=customer, record_id=record, event=event, resolved_at=AT))
    return Incoming(body, "crm.customer.events", 0, next(_offsets),
                    kind_headers("customer.event", type_) if headers is None else headers, customer.encode())


def page_view(eid: str = "pv-1", **kw) -> Incoming:
    return resolved("crm.page_view", eid, {"url": "https://shop.example/p/1"}, **kw)


def purchase(eid: str = "p-1", **kw) -> Incoming:
    return resolved("crm.purchase", eid, {"order_id": f"o-{eid}", "amount": "300.00", "store_id": "SH-001"}, **kw)


@pytest.fixture
def parsed(monkeypatch) -> list[str]:
    """The type of every channel event a service read whole (validated as a channel event)."""
    seen: list[str] = []

    def spy(*args, **kw):
        item = messages.read(*args, **kw)
        if isinstance(item.event, ChannelEventBase):
            seen.append(item.event.type)
        return item

    for name in SERVICES:
        monkeypatch.setattr(importlib.import_module(f"services.{name}.messages"), "read", spy)
    return seen


# What each service counts for one new member's page view: loyalty settles the customer the record joined,
# alerts ignores it (no rule reads it), campaigns keeps its key and the mapping.
PAGE_VIEW_COUNTS = {
    "loyalty": {"processed": 1, "duplicates": 0, "dead_lettered": 0, "customers_settled": 1},
    "alerts": {"processed": 0, "duplicates": 0, "dead_lettered": 0, "ignored": 1},
    "campaigns": {"processed": 1, "duplicates": 0, "dead_lettered": 0},
}


@pytest.mark.parametrize("name", SERVICES)
def test_an_untaken_kind_is_counted_and_joins_its_customer_without_being_parsed(name, tmp_path, parsed):
    named, bare = Running(name, tmp_path / "named"), Running(name, tmp_path / "bare")

    counts = named.feed(page_view())
    assert parsed == []  # its channel event was never parsed
    assert {k: counts.get(k, 0) for k in PAGE_VIEW_COUNTS[name]} == PAGE_VIEW_COUNTS[name]
    assert named.rows("memberships") == [("c_ann", "c_ann", "2026-11-20T02:30:00.000000Z"),
                                         ("c_ann_rec", "c_ann", "2026-11-20T02:30:00.000000Z")]

    # Without the headers (an older identity), the same message is read whole and does exactly the same.
    assert bare.feed(page_view(headers=[])) == counts
    assert parsed == ["crm.page_view"]
    assert bare.rows("memberships") == named.rows("memberships")
    assert bare.bodies() == named.bodies()


@pytest.mark.parametrize("name", SERVICES)
def test_a_taken_kind_is_read_whole_with_or_without_the_headers(name, tmp_path, parsed):
    named, bare = Running(name, tmp_path / "named"), Running(name, tmp_path / "bare")

    counts = named.feed(purchase())
    assert bare.feed(purchase(headers=[])) == counts
    assert counts["processed"] == 1 and counts["dead_lettered"] == 0
    assert parsed == ["crm.purchase", "crm.purchase"]
    assert bare.bodies() == named.bodies()


def test_a_purchase_whose_header_claims_a_page_view_still_earns_its_points(tmp_path, parsed):
    honest, lying = Running("loyalty", tmp_path / "honest"), Running("loyalty", tmp_path / "lying")

    honest.feed(purchase())
    lying.feed(purchase(headers=kind_headers("customer.event", "crm.page_view")))

    assert parsed == ["crm.purchase", "crm.purchase"]  # the body decides: read whole
    assert lying.rows("purchases") == honest.rows("purchases") != []
    assert [m.value for m in lying.published if m.topic == "crm.loyalty.events"] != []
    assert lying.bodies() == honest.bodies()


@pytest.mark.parametrize("name", ("alerts", "campaigns"))
def test_a_purchase_claiming_to_be_a_page_view_is_kept_as_a_purchase(name, tmp_path, parsed):
    honest, lying = Running(name, tmp_path / "honest"), Running(name, tmp_path / "lying")

    assert lying.feed(purchase(headers=kind_headers("customer.event", "crm.page_view"))) == honest.feed(purchase())
    assert parsed == ["crm.purchase", "crm.purchase"]
    assert lying.rows("purchases") == honest.rows("purchases") != []


def test_a_customer_event_whose_header_claims_a_non_members_sale_is_read_whole(tmp_path, parsed):
    # Loyalty takes no non-member's sale: a header saying so of a member's purchase must not make it pass it over.
    loyalty = Running("loyalty", tmp_path / "loyalty")

    counts = loyalty.feed(purchase(headers=kind_headers("store.sale", "crm.purchase")))

    assert counts["processed"] == 1 and parsed == ["crm.purchase"]
    assert loyalty.rows("purchases") != []


def test_an_untaken_kind_that_is_not_a_valid_message_is_dead_lettered_as_before(tmp_path):
    # A head that does not validate (no record) is read whole: the same dead letter, with the same reason.
    loyalty = Running("loyalty", tmp_path / "loyalty")
    body = b'{"kind":"customer.event","customer_id":"c_ann","event":{"type":"crm.page_view"},"resolved_at":"x"}'
    bad = Incoming(body, "crm.customer.events", 0, next(_offsets), kind_headers("customer.event", "crm.page_view"))

    assert loyalty.feed(bad)["dead_lettered"] == 1
    assert [r[5:7] for r in loyalty.rows("dead_letters")] == [(  # its code and reason
        "invalid_message", "record_id: Field required; resolved_at: Input should be a valid datetime or date, input is "
        "too short")]


def test_identity_names_the_kind_and_event_type_of_what_it_publishes_on_customer_events(tmp_path):
    from crm.replay import topic_for

    identity = Running("identity", tmp_path)
    member = {"specversion": "1.0", "id": "p-9", "source": "pos/SH-001", "type": "crm.purchase",
              "time": "2026-11-20T10:15:00+08:00",
              "data": {"identity": {"phone": "+8613900001234"}, "order_id": "o-9", "amount": "12.00",
                       "store_id": "SH-001"}}
    walk_in = {**member, "id": "p-10", "data": {**member["data"], "identity": {}, "order_id": "o-10"}}
    view = {**member, "id": "v-1", "type": "crm.page_view", "source": "web/shop",
            "data": {"identity": {"phone": "+8613900001234"}, "url": "https://shop.example/"}}
    lines = [json.dumps(e) for e in (member, walk_in, view)]
    topic = topic_for(lines[0], identity.service.settings)
    identity.feed(*(Incoming(line.encode(), topic, 0, n) for n, line in enumerate(lines)))

    named = [(read(m.value).message.kind, m.headers[-2:]) for m in identity.published
             if m.topic == "crm.customer.events"]
    assert named == [("customer.event", kind_headers("customer.event", "crm.purchase")),
                     ("store.sale", kind_headers("store.sale", "crm.purchase")),
                     ("customer.event", kind_headers("customer.event", "crm.page_view"))]
