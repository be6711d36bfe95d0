"""Settling an account: derive it from the facts, post the difference to the ledger, announce changes.

This is the one place the ledger's derived entries are written. The entries of a bucket always
add up to its target after a settle; a bucket whose target moved gets a correcting entry that
names what triggered it, so the ledger stays append-only and explains itself. Settling twice, or
in two workers one after the other, posts nothing the second time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.loyalty.domain import checkpoint
from services.loyalty.domain.account import Settlement, settle
from services.loyalty.domain.checkpoint import Checkpoint
from services.loyalty.domain.holds import TierHold
from services.loyalty.domain.model import Bonus, Entry, Facts, Posted, Purchase, Target, TierImport, kind_of
from services.loyalty.domain.rules import RuleBook
from services.loyalty.handlers import Deps
from services.loyalty.store import AccountRow, Announcement, LoyaltyStore, TierOverrideRow
from shared.clock import iso_utc, parse_iso
from shared.contract.facts import epoch_ms
from shared.contract.messages import (
    PointsExpired,
    PointsExpiryAnnounced,
    TierChanged,
    ViewPartUpdated,
    next_part_version,
    part_version,
)
from shared.contract.view_parts import LoyaltyPart
from shared.observability.trace_context import Headers, shared_headers
from shared.storage.base import OutboxMessage

log = logging.getLogger(__name__)
EXPIRING_SHOWN = 6


def load_facts(store: LoyaltyStore, records: list[str], *, since: datetime | None = None) -> Facts:
    """Everything one customer's account is derived from (with ``since``, the purchases made from then on
    and their refunds; every bonus and movement)."""
    purchases = store.purchases_of(records, since_ms=epoch_ms(since) if since is not None else None)
    refunds = store.refunds_for_orders(sorted({p.order_id for p in purchases}))
    # Who owns a refunded order is a question about every purchase with that order id, not only ours.
    owner: dict[str, str] = {}
    for p in sorted(store.purchases_for_orders(sorted({r.order_id for r in refunds})), key=Purchase.order):
        owner.setdefault(p.order_id, p.bucket)
    return Facts(purchases, refunds, store.bonuses_of(records), store.movements_of(records), owner,
                 holds=holds_of(store.tier_overrides_of(records)), tier_imports=store.tier_imports_of(records))


def holds_of(rows: list[TierOverrideRow]) -> tuple[TierHold, ...]:
    """Staff tier overrides as the tier timeline takes them (issue 14): each ends at its last day's end or
    when it was lifted."""
    return tuple(TierHold(o.override_id, o.tier, parse_iso(o.starts_at),
                          parse_iso(min(o.ends_at, o.lifted_at or o.ends_at)), o.until) for o in rows)


def load_histories(store: LoyaltyStore, records: dict[str, list[str]],
                   since: dict[str, datetime | None]) -> dict[str, Facts]:
    """What :func:`load_facts` answers for each of these customers (``records``: each one's records), in a
    few queries for all of them: one per distinct ``since`` (checkpoint horizons are month starts), and one
    each for the refunds, the refunded orders' purchases, the bonuses and the movements."""
    customer_of = {r: c for c, rs in records.items() for r in rs}
    groups: dict[datetime | None, list[str]] = defaultdict(list)
    for c, rs in records.items():
        groups[since.get(c)].extend(rs)
    purchases: dict[str, list[Purchase]] = {c: [] for c in records}
    for when, rs in groups.items():
        for p in store.purchases_of(rs, since_ms=epoch_ms(when) if when is not None else None):
            purchases[customer_of[p.record_id]].append(p)
    orders = {c: {p.order_id for p in ps} for c, ps in purchases.items()}
    refunds = store.refunds_for_orders(sorted(set().union(*orders.values())))
    by_owner = sorted(store.purchases_for_orders(sorted({r.order_id for r in refunds})), key=Purchase.order)
    bonuses: dict[str, list[Bonus]] = {c: [] for c in records}
    for b in store.bonuses_of(list(customer_of)):
        bonuses[customer_of[b.record_id]].append(b)
    movements: dict[str, list[Entry]] = {c: [] for c in records}
    for m in store.movements_of(list(customer_of)):
        movements[customer_of[m.record_id]].append(m)
    tiers: dict[str, list[TierImport]] = {c: [] for c in records}
    for t in store.tier_imports_of(list(customer_of)):
        tiers[customer_of[t.record_id]].append(t)
    out = {}
    for c in records:
        mine = [r for r in refunds if r.order_id in orders[c]]
        refunded = {r.order_id for r in mine}
        owner: dict[str, str] = {}
        for p in by_owner:
            if p.order_id in refunded:
                owner.setdefault(p.order_id, p.bucket)
        out[c] = Facts(purchases[c], mine, bonuses[c], movements[c], owner, tier_imports=tiers[c])
    return out


def corrections(targets: dict[tuple[str, str], Target], posted: dict[tuple[str, str], Posted], *, now: str,
                trigger: list[str]) -> list[Entry]:
    """The entries that bring every derived bucket to its target."""
    out = []
    for key in sorted(targets.keys() | posted.keys()):
        t, p = targets.get(key), posted.get(key)
        want, have = (t.points if t else 0), (p.points if p else 0)
        if want == have:
            continue
        bucket, rule = key
        cause: dict[str, Any] = dict(t.cause) if t else {"reason": "no longer applies"}
        if p is not None:
            cause["correction"] = {"from": have, "to": want, "trigger": trigger[:5]}
        out.append(Entry(f"{bucket}|{rule}|{(p.count if p else 0) + 1}", t.record_id if t else p.record_id,  # type: ignore[union-attr]
                         bucket, rule, kind_of(rule), want - have, iso_utc(t.effective_at) if t else now, now, cause))
    return out


def view_of(s: Settlement, zone) -> dict[str, Any]:
    """The loyalty part of the single customer view."""
    return {"points_balance": s.balance, "tier": s.tier, "debt": s.debt,
            "expiring": [{"points": n, "expires_at": at.astimezone(zone).isoformat()}
                         for at, n in s.expiring[:EXPIRING_SHOWN]]}


def settle_customer(customer_id: str, *, deps: Deps, trigger: list[str], changed_from: datetime | None,
                    read: Prepared | None = None, writes: Writes | None = None,
                    first: First | None = None, posted: dict[tuple[str, str], Posted] | None = None,
                    headers: Headers | None = None, told: dict[str, int] | None = None) -> list[OutboxMessage]:
    """Bring one customer's ledger and account up to date with its facts; returns what to publish.

    ``changed_from`` is the earliest moment the facts added since the last settle reach (None: no fact
    was added, only time went on): the settle starts from the account's checkpoint when that is not
    before the checkpoint's horizon, and from every fact otherwise. ``read``: what :func:`prepare` read
    for this customer beforehand (a batch reads every customer's at once); read here when not given.
    ``writes``: where a batch gathers what its settles write, to write it once (written here when not given).
    ``first``: the settlement from ``read``, worked out beforehand, at its moment and under its rule book;
    ``posted``: what its buckets hold in the ledger (a batch asks the ledger for every customer's at once; read
    here when not given). ``headers``: the trace context
    of what it publishes, made once for a batch's settles (None: each message makes its own). ``told``: what
    the customer was told already of ``first``'s expiry moments (``store.announced_many``, once for a batch).
    """
    if writes is None:
        writes = Writes()
        out = settle_customer(customer_id, deps=deps, trigger=trigger, changed_from=changed_from, read=read,
                              writes=writes)
        writes.flush(deps.store)
        return out
    store = deps.store
    if read is None:
        read = prepare([customer_id], deps=deps, changed_from={customer_id: changed_from})[customer_id]
    if first is None:
        first = settle_first(customer_id, read, deps=deps, now=deps.clock(), book=deps.rules.book())
    now, at, book, s, monthly, latest = first.now, first.at, first.book, first.s, first.monthly, first.latest
    records, start, facts = read.records, read.start, read.facts
    if posted is None:
        posted = store.posted(records, buckets=first.buckets)
    entries = corrections(s.targets, posted, now=at, trigger=trigger)
    ledger_sum = read.balance + sum(e.points for e in entries)
    if ledger_sum != s.balance and start is not None:
        # The ledger holds what the checkpoint does not explain (the clock went back past an expiry, say):
        # settle from every fact, as without a checkpoint.
        log.warning("loyalty: the checkpoint of %s disagrees with its ledger; settling from every fact", customer_id)
        facts, start, latest = load_facts(store, records), None, None
        monthly = _monthly_snapshot(None, facts, now=now, book=book, deps=deps)
        s, entries, ledger_sum = _derive(customer_id, records, facts, book, now, None, monthly, trigger, store,
                                         read.balance)
        told = None  # asked about the first try's expiry moments: this settlement's are asked anew
    if ledger_sum != s.balance:
        # The ledger and the lots must agree; refuse to commit a state where they do not.
        raise RuntimeError(f"ledger sum {ledger_sum} differs from lots {s.balance} for {customer_id}")
    if s.snapshot is not None:
        snap = replace(s.snapshot, records=tuple(records), book=book.fingerprint)
        # A new monthly checkpoint replaces both; a latest one goes beside the monthly one in place.
        writes.checkpoints[customer_id] = (checkpoint.join(read.kept, snap) if latest is not None and read.kept
                                           else checkpoint.dump(snap))
    elif read.stale and read.kept:
        # A latest checkpoint this settle did not start from may miss a fact it just took: never used again.
        writes.checkpoints[customer_id] = read.kept
    writes.entries += entries
    held = read.account or AccountRow(customer_id)
    out: list[OutboxMessage] = []
    for e in entries:
        if e.rule == "expiry" and e.points < 0:
            out.append(deps.message(PointsExpired(entry_id=e.entry_id, customer_id=customer_id, points=-e.points,
                                                  at=now), customer_id, headers=headers))
    out += _tier_changed(held, s, book, customer_id, now, deps, headers)
    out += _announcements(s, customer_id, now, deps, writes, headers, told)
    view = view_of(s, deps.zone)
    version = held.version
    if view != held.view:
        version = next_part_version(version)
        out.append(deps.message(ViewPartUpdated(customer_id=customer_id, part="loyalty",
                                                value=LoyaltyPart.model_validate(view),
                                                version=part_version(version)), customer_id, headers=headers))
    writes.accounts.append(AccountRow(customer_id, s.balance, s.debt, s.tier, view, version,
                                      epoch_ms(s.next_due) if s.next_due else None, at))
    return out


def _monthly_snapshot(start: Checkpoint | None, facts: Facts, *, now: datetime, book: RuleBook,
                      deps: Deps) -> datetime | None:
    # Where this settle moves the monthly checkpoint to, if it does.
    if not deps.config.checkpoint_lag_months:
        return None
    at = checkpoint.horizon(now, book.zone, deps.config.checkpoint_lag_months)
    if start is not None and at <= start.at:
        return None  # the checkpoint in place is as recent as the lag allows
    least = deps.config.checkpoint_min_purchases
    if start is None and (len(facts.purchases) < least or sum(1 for p in facts.purchases if p.time < at) < least):
        return None  # a short history: replaying it costs less than keeping a checkpoint
    return at


def _tier_changed(held: AccountRow, s: Settlement, book: RuleBook, customer_id: str, now: datetime,
                  deps: Deps, headers: Headers | None) -> list[OutboxMessage]:
    if s.tier == held.tier:
        return []
    rules = book.at(now).tiers
    last = s.timeline.changes[-1] if s.timeline.changes else None
    reason = last.reason if last and last.tier == s.tier else "recomputed from the member's history"
    when = iso_utc(last.at) if last and last.tier == s.tier else iso_utc(now)
    level = rules.level(s.tier)
    body = TierChanged(change_id=f"tier:{customer_id}:{when}:{held.tier or '-'}>{s.tier or '-'}",
                       customer_id=customer_id, previous=held.tier, tier=s.tier,
                       direction="upgrade" if rules.rank(s.tier) < rules.rank(held.tier) else "downgrade",
                       reason=reason, benefits=level.benefits if level else {}, at=now)
    return [deps.message(body, customer_id, headers=headers)]


def _announcements(s: Settlement, customer_id: str, now: datetime, deps: Deps, writes: Writes,
                   headers: Headers | None, told: dict[str, int] | None) -> list[OutboxMessage]:
    # Once per expiry moment, and again whenever more points joined that moment than were announced (a
    # purchase inside the notice window under month-end or year-end expiry): no point expires unannounced.
    if not s.announce:
        return []  # nothing within its notice: no look-up
    due = {iso_utc(at): (at, n) for at, n in s.announce}
    if told is None:
        told = deps.store.announced(customer_id, list(due))
    fresh = [Announcement(f"exp:{customer_id}:{key}" + (f":{n}" if key in told else ""), customer_id, key, n,
                          iso_utc(now)) for key, (_, n) in sorted(due.items()) if n > told.get(key, 0)]
    if not fresh:
        return []
    writes.announcements += fresh
    return [deps.message(PointsExpiryAnnounced(announcement_id=a.announcement_id, customer_id=customer_id,
                                               points=a.points, expires_at=due[a.expires_at][0], balance=s.balance,
                                               at=now), customer_id, headers=headers)
            for a in fresh]


@dataclass(frozen=True)
class First:
    """A settle's first try: its moment (and as stored text) and rule book, the checkpoints it may keep, and the
    settlement (what its buckets hold in the ledger is read beside it: :meth:`buckets`)."""

    now: datetime
    at: str  # ``now`` as the ledger and the account store it
    book: RuleBook
    monthly: datetime | None
    latest: datetime | None
    s: Settlement

    @property
    def buckets(self) -> list[str] | None:
        """The buckets whose ledger sums the settlement is compared with (None: all of them)."""
        return sorted(self.s.scope) if self.s.scope is not None else None


def settle_first(customer_id: str, read: Prepared, *, deps: Deps, now: datetime, book: RuleBook,
                 at: str | None = None) -> First:
    """The settlement of what :func:`prepare` read, from its checkpoint, at ``now``; the ledger not read.
    ``at``: ``now`` as stored text, when the caller formatted it already (a batch does, once for all)."""
    start, facts = read.start, read.facts
    monthly = _monthly_snapshot(start, facts, now=now, book=book, deps=deps)
    # Not moving the monthly checkpoint, a settle that replayed enough purchases since its own keeps one where
    # it stopped, beside the monthly one, for the next settle to start from.
    latest = None
    if monthly is None and start is not None and read.kept is not None and deps.config.checkpoint_recent_purchases \
            and len(facts.purchases) >= deps.config.checkpoint_recent_purchases:
        latest = checkpoint.frontier([p.time for p in facts.purchases], start=start.at, now=now)
        latest = latest if latest > start.at else None
    s = settle(facts, book, customer_id=customer_id, now=now, start=start, snapshot_at=monthly or latest)
    return First(now, at if at is not None else iso_utc(now), book, monthly, latest, s)


def _derive(customer_id: str, records: list[str], facts: Facts, book: RuleBook, now: datetime,
            start: Checkpoint | None, snapshot_at: datetime | None, trigger: list[str],
            store: LoyaltyStore, balance: int) -> tuple[Settlement, list[Entry], int]:
    s = settle(facts, book, customer_id=customer_id, now=now, start=start, snapshot_at=snapshot_at)
    posted = store.posted(records, buckets=sorted(s.scope) if s.scope is not None else None)
    entries = corrections(s.targets, posted, now=iso_utc(now), trigger=trigger)
    return s, entries, balance + sum(e.points for e in entries)


@dataclass
class Writes:
    """What settles write (ledger entries, checkpoints, announcements, accounts), gathered so a batch writes
    each kind once. Exact because a settle reads only its own customer's rows (see :func:`prepare`)."""

    entries: list[Entry] = field(default_factory=list)
    checkpoints: dict[str, str] = field(default_factory=dict)
    announcements: list[Announcement] = field(default_factory=list)
    accounts: list[AccountRow] = field(default_factory=list)

    def flush(self, store: LoyaltyStore) -> None:
        """Write what was gathered, each kind in one store call."""
        if self.checkpoints:
            store.put_checkpoints(self.checkpoints)
        if self.entries:
            store.add_entries(self.entries)
        if self.announcements:
            store.add_announcements(self.announcements)
        if self.accounts:
            store.put_accounts(self.accounts)


@dataclass(frozen=True)
class Prepared:
    """What a settle reads before deriving: the customer's records, the checkpoint it starts from (None: from
    every fact), the facts from there on, the account as last settled, and its records' ledger sum."""

    records: list[str]
    start: Checkpoint | None
    facts: Facts
    account: AccountRow | None
    balance: int  # the sum of the records' ledger entries before this settle
    kept: str | None = None  # the stored monthly checkpoint's text, kept as it is beside a latest one
    stale: bool = False  # a latest checkpoint is stored that this settle does not start from


def prepare(customers: list[str], *, deps: Deps, changed_from: dict[str, datetime | None]) -> dict[str, Prepared]:
    """Read what settling each of these customers starts from, for all of them at once.

    Settling one customer writes only its own rows (its records' ledger entries, its account, checkpoint
    and announcements), so reading every customer's before settling any gives what each would read alone.
    """
    store, now, book = deps.store, deps.clock(), deps.rules.book()
    records = store.records_of_many(customers)
    texts = store.checkpoints_of(customers)
    lag = deps.config.checkpoint_lag_months
    due = checkpoint.horizon(now, book.zone, lag) if lag else None
    starts: dict[str, Checkpoint | None] = {}
    kept: dict[str, str | None] = {}
    latest: dict[str, bool] = {}  # a latest checkpoint is stored
    recents: dict[str, Checkpoint | None] = {}
    for c in customers:
        month_text, recent_text = checkpoint.split(texts[c]) if texts.get(c) else (None, None)
        kept[c], starts[c], latest[c] = month_text, None, recent_text is not None
        month = checkpoint.load(month_text) if month_text else None
        # The latest checkpoint only while the monthly one is where it should be: a settle from the monthly one
        # moves it (once a month), so a member whose events all come in order still has a recent one to fall
        # back on.
        recent = checkpoint.load(recent_text) if recent_text and month is not None and (
            due is None or month.at >= due) else None
        recents[c] = recent
        for start in (recent, month):
            if start is not None and start.usable(records=records[c], book=book.fingerprint, now=now,
                                                  changed_from=changed_from.get(c)):
                starts[c] = start
                break
    facts = load_histories(store, records, {c: s.at if s is not None else None for c, s in starts.items()})
    partial = []
    for c, start in starts.items():
        if start is None:
            continue
        cut = iso_utc(start.at)
        later = [m for m in facts[c].movements if m.effective_at >= cut]
        if len(facts[c].movements) - len(later) != start.movements_before:
            starts[c] = None  # a redemption or adjustment dated before the horizon: from every fact
            partial.append(c)
        else:
            facts[c] = replace(facts[c], movements=later)
    if partial:
        facts |= load_histories(store, {c: records[c] for c in partial}, {})
    overrides = store.tier_overrides_of([r for c in customers for r in records[c]])  # issue 14: one query a batch
    if overrides:
        customer_of = {r: c for c in customers for r in records[c]}
        for c in {customer_of[o.customer_id] for o in overrides}:
            facts[c] = replace(facts[c], holds=holds_of([o for o in overrides if customer_of[o.customer_id] == c]))
    accounts = store.accounts_of(customers)
    sums = store.balances_of([r for c in customers for r in records[c]])
    return {c: Prepared(records[c], starts[c], facts[c], accounts.get(c), sum(sums.get(r, 0) for r in records[c]),
                        kept[c], latest[c] and (recents[c] is None or starts[c] is not recents[c]))
            for c in customers}


@dataclass
class Touched:
    """The customers a batch changed: why (for the correcting entries), and the earliest moment each
    change reaches (a purchase's time; ``BEGINNING`` when any of the past may differ, as after a merge)."""

    why: dict[str, list[str]] = field(default_factory=dict)
    since: dict[str, datetime] = field(default_factory=dict)

    def add(self, customer_id: str, why: str, since: datetime) -> None:
        """Note one change of a customer's facts."""
        self.why.setdefault(customer_id, []).append(why)
        held = self.since.get(customer_id)
        self.since[customer_id] = since if held is None or since < held else held


def settle_many(touched: Touched, *, deps: Deps) -> list[OutboxMessage]:
    """Settle every active customer among these (merged-away ones are settled as their survivor)."""
    out: list[OutboxMessage] = []
    roots = Touched()
    owners = deps.store.customers_of(sorted(touched.why))
    for c, why in touched.why.items():
        for w in why:
            roots.add(owners[c], w, touched.since[c])
    # A root among the touched was asked about already (nothing is written in between): only the others are.
    active = owners | deps.store.customers_of(sorted(r for r in roots.why if r not in owners))
    settled = [root for root in sorted(roots.why) if active[root] == root]
    if not settled:
        # Nobody to settle (a batch of page views, say): none of the reads below, a dozen statements a batch.
        return out
    read = prepare(settled, deps=deps, changed_from={c: roots.since[c] for c in settled})
    # Every customer's first try at one moment, then one look at the ledger for all of them.
    now, book = deps.clock(), deps.rules.book()
    at = iso_utc(now)  # every entry and account of the batch is stamped with it
    firsts = {c: settle_first(c, read[c], deps=deps, now=now, book=book, at=at) for c in settled}
    posted = deps.store.posted_many({c: (read[c].records, firsts[c].buckets) for c in settled})
    # What each customer with points near expiry was told already, in one look for all of them.
    told = deps.store.announced_many({c: [iso_utc(when) for when, _ in firsts[c].s.announce] for c in settled
                                      if firsts[c].s.announce})
    writes = Writes()
    # Untraced settles' messages all carry the batch's context: made once, not once a message.
    headers = shared_headers()
    for root in settled:
        out += settle_customer(root, deps=deps, trigger=roots.why[root], changed_from=roots.since[root],
                               read=read[root], writes=writes, first=firsts[root], posted=posted[root],
                               headers=headers, told=told.get(root))
    writes.flush(deps.store)
    return out
