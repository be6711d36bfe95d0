"""A generated multi-channel scenario with its known truth, for the demo, tests and benchmarks.

People buy at stores, on WeChat and on the web; they first appear on WeChat or the web without a
phone and are later bound to it; phones come in mixed notations; some events are sent twice and
some are malformed. The truth is computed here from the people, not by the platform.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
STORES = ["SH-001", "SH-002", "BJ-001", "GZ-001", "SZ-001", "CD-001"]
PREFIXES = ["130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "158", "159",
            "186", "187", "188", "189"]
CATEGORIES = ["skincare", "makeup", "fragrance", "haircare"]


@dataclass
class Person:
    n: int
    digits: str  # 11-digit national mobile number
    openid: str | None
    web_user_id: str | None
    member_id: str | None
    purchases: list[tuple[datetime, Decimal, str]] = field(default_factory=list)
    refunds: list[Decimal] = field(default_factory=list)

    @property
    def birthday(self) -> date:
        """A birthday given on the WeChat profile (derived from the person, so the random stream is unchanged)."""
        return date(1960 + self.n % 45, 1 + self.n % 12, 1 + self.n % 28)


@dataclass
class Scenario:
    events: list[dict]  # in publish order: shuffled, duplicates and malformed included
    people: list[Person]
    malformed: int
    duplicates: int

    def truth(self) -> dict[str, dict]:
        """Per phone (E.164): the statistics the single customer view must show."""
        out = {}
        for p in self.people:
            days = {t.astimezone(SHANGHAI).date().isoformat() for t, _, _ in p.purchases}
            per_store: dict[str, set[str]] = defaultdict(set)
            for t, _, s in p.purchases:
                per_store[s].add(t.astimezone(SHANGHAI).date().isoformat())
            ranked = sorted(per_store.items(), key=lambda kv: kv[0])
            ranked.sort(key=lambda kv: (len(kv[1]), max(kv[1])), reverse=True)
            times = [t for t, _, _ in p.purchases]
            out[f"+86{p.digits}"] = {
                "purchase_count": len(p.purchases),
                "purchase_days": len(days),
                "total_spend": str(sum((a for _, a, _ in p.purchases), Decimal("0.00"))),
                "refund_total": str(sum(p.refunds, Decimal("0.00"))),
                "home_store": ranked[0][0] if ranked else None,
                "first_purchase_at": min(times) if times else None,
                "last_purchase_at": max(times) if times else None,
            }
        return out

    def jsonl(self) -> str:
        """The events as JSON lines (malformed ones as the raw text they are)."""
        return "".join((e if isinstance(e, str) else json.dumps(e, ensure_ascii=False)) + "\n" for e in self.events)


def _phone(rng: random.Random, used: set[str]) -> str:
    while True:
        digits = rng.choice(PREFIXES) + f"{rng.randrange(10**8):08d}"
        tail = digits[-8:]
        if digits not in used and len(set(tail)) > 2 and tail not in "0123456789" and tail not in "9876543210":
            used.add(digits)
            return digits


def notation(digits: str, rng: random.Random) -> str:
    """The same phone the way different tills and forms write it."""
    a, b, c = digits[:3], digits[3:7], digits[7:]
    return rng.choice([digits, f"{a}-{b}-{c}", f"+86 {a} {b} {c}", f"0086{digits}", f"{a} {b} {c}", f"+86{digits}"])


def _event(eid: str, source: str, kind: str, when: datetime, data: dict) -> dict:
    return {"specversion": "1.0", "id": eid, "source": source, "type": kind, "time": when.isoformat(),
            "datacontenttype": "application/json", "data": data}


def generate(people: int = 1000, *, events_per_person: int = 5, malformed: int = 50, duplicate_share: float = 0.04,
             seed: int = 7, start: datetime = datetime(2026, 1, 1, tzinfo=SHANGHAI), prefix: str = "") -> Scenario:
    """A shuffled scenario of at least ``people * events_per_person`` events with its truth."""
    rng = random.Random(seed)
    used: set[str] = set()
    crowd: list[Person] = []
    events: list[dict] = []
    tag = prefix or f"s{seed}"
    for n in range(people):
        p = Person(n, _phone(rng, used),
                   openid=f"o{tag}-{n:06d}" if rng.random() < 0.6 else None,
                   web_user_id=f"u{tag}-{n:06d}" if rng.random() < 0.4 else None,
                   member_id=f"M-{tag}-{n:06d}" if rng.random() < 0.5 else None)
        crowd.append(p)
        events.extend(_person_events(p, rng, events_per_person, start, tag))
    dups = [json.loads(json.dumps(e)) for e in rng.sample(events, int(len(events) * duplicate_share))]
    events += dups
    bad = _malformed(malformed, rng, tag, start)
    events += bad
    rng.shuffle(events)
    return Scenario(events, crowd, len(bad), len(dups))


def _person_events(p: Person, rng: random.Random, count: int, start: datetime, tag: str) -> list[dict]:
    out: list[dict] = []
    seq = 0

    def eid(kind: str) -> str:
        nonlocal seq
        seq += 1
        return f"{tag}-{p.n:06d}-{kind}-{seq:03d}"

    when = start + timedelta(days=rng.randrange(0, 200), minutes=rng.randrange(0, 1440))
    # Channel-only identities first (no phone), bound to the phone by a later event.
    if p.openid:
        out.append(_event(eid("follow"), "wechat/oa", "crm.follow", when, {"identity": {"wechat_openid": p.openid}}))
        bind = {"phone": notation(p.digits, rng), "wechat_openid": p.openid}
        out.append(_event(eid("bind"), "wechat/mini", "crm.profile", when + timedelta(hours=2),
                          {"identity": bind, "name": f"Customer {p.n}", "city": rng.choice(["Shanghai", "Beijing"]),
                           "birthday": p.birthday.isoformat()}))
    if p.web_user_id:
        out.append(_event(eid("view"), "web/shop", "crm.page_view", when + timedelta(minutes=5),
                          {"identity": {"web_user_id": p.web_user_id}, "url": "https://shop.example/p/1"}))
        out.append(_event(eid("login"), "web/shop", "crm.consent", when + timedelta(hours=3),
                          {"identity": {"web_user_id": p.web_user_id, "phone": notation(p.digits, rng)},
                           "purpose": "sms", "granted": rng.random() < 0.7}))
    home = rng.choice(STORES)
    while len(out) < count + 2 or not p.purchases:
        when += timedelta(days=rng.randrange(0, 20), hours=rng.randrange(0, 24), minutes=rng.randrange(0, 60))
        channel = rng.choices(["pos", "wechat", "web"], [0.6, 0.2, 0.2])[0]
        store = home if rng.random() < 0.7 else rng.choice(STORES)
        amount = Decimal(rng.randrange(1000, 300000)) / 100
        ident: dict = {"phone": notation(p.digits, rng)}
        if channel == "pos" and p.member_id:
            ident["member_id"] = p.member_id
        if channel == "wechat" and p.openid:
            ident = {"wechat_openid": p.openid}  # bound to the phone by the profile event above
        if channel == "web" and p.web_user_id:
            ident = {"web_user_id": p.web_user_id}
        source = {"pos": f"pos/{store}", "wechat": "wechat/mini", "web": "web/shop"}[channel]
        order = eid("order")
        data = {"identity": ident, "order_id": order, "amount": str(amount), "currency": "CNY", "store_id": store,
                "items": [{"sku": f"SK-{rng.randrange(100):02d}", "category": rng.choice(CATEGORIES),
                           "quantity": 1, "unit_price": str(amount)}]}
        out.append(_event(order, source, "crm.purchase", when, data))
        p.purchases.append((when, amount, store))
        if rng.random() < 0.08:
            part = (amount * Decimal(rng.choice([25, 50, 100])) / 100).quantize(Decimal("0.01"))
            out.append(_event(eid("refund"), source, "crm.refund", when + timedelta(days=1),
                              {"identity": {"phone": notation(p.digits, rng)}, "order_id": order,
                               "amount": str(part)}))
            p.refunds.append(part)
    return out


def _malformed(count: int, rng: random.Random, tag: str, start: datetime) -> list:
    good = _event("x", "pos/SH-001", "crm.purchase", start,
                  {"identity": {"phone": "13912345670"}, "order_id": "x", "amount": "10.00", "store_id": "SH-001"})
    makers = [
        lambda i: f'{{"specversion": "1.0", "id": "{tag}-bad-{i}", "source": "pos/SH-001"',  # cut-off JSON
        # No identifier: a purchase with none is a non-member's sale (issue 15), a profile never is.
        lambda i: {**good, "id": f"{tag}-bad-{i}", "type": "crm.profile", "data": {"identity": {}, "city": "x"}},
        lambda i: {**good, "id": f"{tag}-bad-{i}", "data": {**good["data"], "amount": "12.345"}},
        lambda i: {**good, "id": f"{tag}-bad-{i}", "time": "2026-01-01T10:00:00"},  # no timezone
        lambda i: {**good, "id": f"{tag}-bad-{i}", "data": {**good["data"], "identity": {"phone": "12345"}}},
        lambda i: {**good, "id": f"{tag}-bad-{i}", "source": "fax/machine"},
    ]
    return [makers[i % len(makers)](i) for i in range(count)]


def first_at(moment: datetime | None) -> str | None:
    """How the view prints a purchase time (Asia/Shanghai)."""
    return moment.astimezone(SHANGHAI).isoformat() if moment else None


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
