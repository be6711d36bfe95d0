"""Small builders for loyalty facts in unit tests."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from services.loyalty.domain.model import Bonus, Entry, Facts, Line, Purchase, Refund
from services.loyalty.domain.rules import RuleBook, rule_book

SH = ZoneInfo("Asia/Shanghai")


def t(text: str) -> datetime:
    """A Shanghai-time moment from ``2026-01-15 10:00`` (or a full ISO string with its zone)."""
    if "+" in text[10:] or text.endswith("Z"):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return datetime.fromisoformat(text).replace(tzinfo=SH)


def purchase(pid: str, amount: str, when: str, *, record: str = "c_a", order: str | None = None,
             lines: tuple[Line, ...] = (), source: str = "pos/SH-001") -> Purchase:
    moment = t(when)
    return Purchase(source, pid, record, order or pid, int(Decimal(amount) * 100), moment,
                    moment.astimezone(SH).date().isoformat(), lines)


def refund(rid: str, order: str, amount: str, when: str, *, record: str = "c_a") -> Refund:
    return Refund("pos/SH-001", rid, record, order, int(Decimal(amount) * 100), t(when))


def bonus(gid: str, campaign: str, multiplier: str, starts: str, ends: str, *, record: str = "c_a",
          active: bool = True) -> Bonus:
    return Bonus(gid, campaign, record, Decimal(multiplier), t(starts), t(ends), active, t(starts))


def movement(bucket: str, rule: str, points: int, when: str, *, record: str = "c_a") -> Entry:
    from shared.clock import iso_utc

    return Entry(f"{bucket}|{rule}|1", record, bucket, rule, "redeem" if rule != "manual" else "adjust", points,
                 iso_utc(t(when)), iso_utc(t(when)))


def book(document: dict | list | None = None, **base_over) -> RuleBook:
    from services.loyalty.config import LoyaltySettings

    base = LoyaltySettings(_env_file=None, **base_over).base_rules()
    return rule_book(base, document, SH)


def facts(purchases=(), refunds=(), bonuses=(), movements=()) -> Facts:
    ps = list(purchases)
    owner: dict[str, str] = {}
    for p in sorted(ps, key=Purchase.order):
        owner.setdefault(p.order_id, p.bucket)
    return Facts(ps, list(refunds), list(bonuses), list(movements), owner)
