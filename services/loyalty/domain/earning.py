"""Points a purchase earns, rule by rule, and what refunds leave of them.

Every amount is computed exactly (integer ratios) and rounded down once per rule and order:

* base: ``floor(A × rate)``;
* a category or SKU multiplier ``k`` on the part of the order spent on matching lines (``x`` points
  before rounding): ``floor(x × k) − floor(x)`` extra (a SKU rule beats a category rule on a line);
* the member's tier at the time of the purchase and each campaign's bonus: ``floor(B × k) − B`` extra
  on the base ``B`` (several grants of one campaign count once, the highest);
* caps per calendar period, in event-time order: the excess is taken off (rule ``cap``); a period's
  room is used by what earlier orders keep after their refunds, so a refund reopens it;
* refunds totalling R of an order of amount A that earned E leave ``floor(E × (A − R) / A)``, R capped
  at A (rule ``refund`` takes off the difference).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from services.loyalty.domain.model import Bonus, Purchase, Refund, Target
from services.loyalty.domain.rules import EarningRules, RuleBook, period_key
from shared.contract.facts import from_minor

RuleRow = tuple[str, int, dict]  # rule id, points, cause


def _weights(p: Purchase) -> list[int]:
    priced = [ln.price_minor * ln.quantity if ln.price_minor is not None else 0 for ln in p.lines]
    if sum(priced) > 0:
        return priced
    by_quantity = [ln.quantity for ln in p.lines]
    return by_quantity if sum(by_quantity) > 0 else [1] * len(p.lines)


@functools.lru_cache(maxsize=1024)
def _ratio(k: Decimal) -> tuple[int, int]:
    """A multiplier as an exact integer ratio (a handful of distinct values, used for every purchase)."""
    return k.as_integer_ratio()


def product_extras(p: Purchase, rules: EarningRules) -> list[RuleRow]:
    """Extra points from category and SKU multipliers, one row per rule."""
    if not p.lines or not (rules.categories or rules.skus):
        return []
    weights = _weights(p)
    total = sum(weights)
    parts: dict[str, tuple[int, Decimal]] = {}
    for line, w in zip(p.lines, weights, strict=True):
        if line.sku in rules.skus:
            rule, k = f"sku:{line.sku}", rules.skus[line.sku]
        elif line.category is not None and line.category in rules.categories:
            rule, k = f"category:{line.category}", rules.categories[line.category]
        else:
            continue
        parts[rule] = (parts.get(rule, (0, k))[0] + w, k)
    out = []
    rate = rules.rate()
    for rule, (w, k) in sorted(parts.items()):
        # x = A x w / total x rate as num / den; floor(x k) - floor(x) in integers (Fractions cost 10x).
        num, den = p.amount_minor * w * rate.numerator, 100 * total * rate.denominator
        kn, kd = _ratio(k)
        extra = num * kn // (den * kd) - num // den
        if extra:
            out.append((rule, extra, {"multiplier": str(k), "share": f"{w}/{total}"}))
    return out


def gross(p: Purchase, rules: EarningRules, tier: str | None, bonuses: list[Bonus]) -> list[RuleRow]:
    """The points a purchase earns before caps and refunds, by rule."""
    rate = rules.rate()
    base = p.amount_minor * rate.numerator // (100 * rate.denominator)  # floor(A x rate), in integers
    rows: list[RuleRow] = [("base", base, {"amount": str(from_minor(p.amount_minor)),
                                           "rate": f"{rules.points_per_unit}/{rules.unit_amount}"})]
    rows += product_extras(p, rules)
    if tier is not None and tier in rules.tiers:
        kn, kd = _ratio(rules.tiers[tier])
        if extra := base * kn // kd - base:
            rows.append((f"tier:{tier}", extra, {"tier": tier, "multiplier": str(rules.tiers[tier])}))
    best: dict[str, Bonus] = {}
    for b in bonuses:
        if b.covers(p.time):
            held = best.get(b.campaign_id)
            if held is None or (b.multiplier, held.grant_id) > (held.multiplier, b.grant_id):
                best[b.campaign_id] = b
    for campaign_id, b in sorted(best.items()):
        kn, kd = _ratio(b.multiplier)
        if extra := base * kn // kd - base:
            rows.append((f"campaign:{campaign_id}", extra,
                         {"campaign_id": campaign_id, "grant_id": b.grant_id, "multiplier": str(b.multiplier)}))
    return rows


def net_after_refunds(earned: int, amount_minor: int, refunded_minor: int) -> int:
    """``floor(E × (A − R) / A)`` with R capped at A, in integers (exact)."""
    if amount_minor <= 0:
        return earned
    r = min(max(refunded_minor, 0), amount_minor)
    return earned * (amount_minor - r) // amount_minor


@dataclass(frozen=True)
class Rated:
    """A purchase's targets and the points it holds after caps and refunds (its lot)."""

    purchase: Purchase
    targets: list[Target]
    net: int


Used = dict[tuple[str, str], int]  # (period, period key) -> points kept in that calendar period


def rate_all(purchases: list[Purchase], refunds: list[Refund], bonuses: list[Bonus], book: RuleBook,
             tier_at: Callable[[Purchase], str | None], order_owner: dict[str, str], *, used: Used | None = None,
             snapshot_at: datetime | None = None) -> tuple[list[Rated], Used | None]:
    """Rate every purchase of a customer in event-time order (caps depend on that order).

    ``used`` is the cap room already used by purchases before these (resuming at a horizon); with
    ``snapshot_at``, the room used by the purchases before that moment is returned beside the ratings.
    """
    by_order: dict[str, list[Refund]] = defaultdict(list)
    for r in refunds:
        by_order[r.order_id].append(r)
    used = defaultdict(int, used or {})
    snapshot: Used | None = None
    out = []
    for p in sorted(purchases, key=Purchase.order):
        if snapshot_at is not None and snapshot is None and p.time >= snapshot_at:
            snapshot = _open_periods(used, snapshot_at)
        rules = book.at(p.time).earning
        base_cause = {"source": p.source, "event_id": p.id, "order_id": p.order_id}
        rows = gross(p, rules, tier_at(p), bonuses)
        earned = sum(points for _, points, _ in rows)
        granted = earned
        limits = []
        for period, limit in sorted(rules.caps.items()):
            key = (period, period_key(p.day, period))
            room = max(limit - used[key], 0)
            if granted > room:
                granted = room
                limits.append(f"{period}:{key[1]} limit {limit}")
        if granted != earned:
            rows.append(("cap", granted - earned, {"caps": limits}))
        net = granted
        mine = by_order.get(p.order_id, []) if order_owner.get(p.order_id, p.bucket) == p.bucket else []
        if mine:
            refunded = sum(r.amount_minor for r in mine)
            net = net_after_refunds(granted, p.amount_minor, refunded)
            if net != granted:
                latest = max(mine, key=lambda r: (r.time, r.source, r.id))
                rows.append(("refund", net - granted, {
                    "refunds": sorted(f"{r.source}:{r.id}" for r in mine), "earned": granted,
                    "amount": str(from_minor(p.amount_minor)),
                    "refunded": str(from_minor(min(refunded, p.amount_minor))),
                    "at": latest.time.isoformat()}))
        # A cap counts the points the member keeps: what a refund takes back frees room for later purchases.
        for period in rules.caps:
            used[(period, period_key(p.day, period))] += net
        targets = [Target(p.record_id, p.bucket, rule, points, _when(p, rule, mine), {**base_cause, **cause})
                   for rule, points, cause in rows if points]
        out.append(Rated(p, targets, net))
    if snapshot_at is not None and snapshot is None:
        snapshot = _open_periods(used, snapshot_at)
    return out, snapshot


def _open_periods(used: Used, horizon: datetime) -> Used:
    # The periods a purchase from the horizon on can share with earlier ones. Period keys are store-local
    # days, so the bounds leave a margin for any store's timezone.
    bounds = {"day": (horizon - timedelta(days=2)).date().isoformat(),
              "month": (horizon - timedelta(days=32)).date().isoformat()[:7],
              "year": (horizon - timedelta(days=367)).date().isoformat()[:4]}
    return {k: n for k, n in used.items() if k[1] >= bounds[k[0]]}


def _when(p: Purchase, rule: str, refunds: list[Refund]) -> datetime:
    if rule == "refund" and refunds:
        return max(p.time, max(r.time for r in refunds))
    return p.time
