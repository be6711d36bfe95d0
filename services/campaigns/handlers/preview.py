"""The audience preview at 100,000 customers (issue 16): every customer's facts kept as columns, filters as masks.

Evaluating an audience the launch's way reads and folds every customer's facts and profiles each one in Python
(4 s at 100,000 customers). The preview instead keeps, per store object in this process, an index of every
active customer's facts as columns (codes for tier, gender, city and home store, the birthday, the last purchase
day, frequency, net spend, the categories bought, the consent state per channel), read as of no moment (every
fact held) and brought forward through the store's logs of facts and touches (``store.changes``): at unchanged
generations it is used as it is, at a newer one only the customers the facts log names since are read again (the
whole index when the log cannot say), and only the touches of the campaigns the touches log names.
The filter then runs as vectorised masks for the day of the preview, with the same casefolded comparisons,
age bands and ranges as ``audience.matches``; consents and the contact cap leave out the same customers in the
same order of reasons; buckets are hashed only for the members, and kept per campaign so a changed audience of
the same draft reuses them.

Facts dated after the preview's moment (a future-dated purchase or profile value) are left out by the launch's
reading: a customer whose newest fact is after the moment is evaluated by the launch's own functions over
facts read as of that moment. A churn-model filter (``p_alive``) fits a model over everyone: such a preview takes
the launch's path whole. The launch itself never uses the index.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Collection
from datetime import date, datetime
from typing import get_args
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

import numpy as np

from services.campaigns.domain.audience import (
    AGE_LIMITS,
    BUCKETS,
    CustomerFacts,
    Tally,
    birth_date,
    consent,
    home_store,
    launch_fields,
    plan,
    text,
)
from services.campaigns.domain.definition import AGE_BANDS, AudienceFilter, Channel, Definition, IntRange
from services.campaigns.handlers import Deps
from shared.contract.facts import epoch_ms

EVER = 2**62  # "as of" for the index: every fact held, whatever its date
CHANNELS: tuple[str, ...] = get_args(Channel)
NO_CONSENT, OPTED_OUT, CONSENTED = 0, 1, 2
KEPT_CAMPAIGNS = 16  # campaigns whose members' buckets are kept
DAY_MS = 86_400_000
REBUILD_SHARE = 4  # more changed customers than one in this many: the whole index is read again
CHUNK = 5_000  # customers whose facts are read at once (about 25 MB of objects; 20,000 peaked at 419 MB: issue 13)
TEXT_COLUMNS = ("tier", "gender", "city", "home")  # codes of ``FactsIndex.words``
# A row without facts (a customer gone: erased or merged away) holds nothing of the customer it was.
BLANK = {"newest": 0, "tier": -1, "gender": -1, "city": -1, "home": -1, "born_y": -1, "born_m": 0, "born_d": 0,
         "last": -1, "frequency": 0, "net": 0, "categories": -1, **{f"consent.{c}": NO_CONSENT for c in CHANNELS}}


def _codes(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _within(values: np.ndarray, low: int | None, high: int | None) -> np.ndarray:
    """Where values lie in an inclusive range with open ends (as ``IntRange.holds`` for known values)."""
    out = np.ones(len(values), dtype=bool)
    if low is not None:
        out &= values >= low
    if high is not None:
        out &= values <= high
    return out


class FactsIndex:
    """Every active customer's facts as columns; a customer keeps its position for the index's life."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation: int | None = None
        self.used_at: float | None = None  # the last preview's time.monotonic()
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}
        self.words: dict[str, int] = {}  # casefolded text -> its code in the text columns, while a row holds it
        self._next_word = 0  # codes are never reused: a word no row holds any more is forgotten
        # Each distinct set of categories bought (casefolded), once: customers hold its code.
        self.category_sets: dict[frozenset[str], int] = {}
        self.buckets: OrderedDict[str, np.ndarray] = OrderedDict()
        ints = ("newest", "tier", "gender", "city", "home", "born_y", "born_m", "born_d", "last", "frequency", "net",
                "categories")
        self.cols: dict[str, np.ndarray] = {name: np.zeros(0, dtype=np.int64) for name in ints}
        self.cols.update({f"consent.{c}": np.zeros(0, dtype=np.int8) for c in CHANNELS})
        self.active = np.zeros(0, dtype=bool)
        self.touch_generation: int | None = None  # of the store's log of touches (``touches_generation``)
        # Every touch of an indexed customer: its position, time (the contact cap counts them per period) and
        # campaign's code in ``campaign_codes`` (a campaign's touches are read again in place of those held).
        self.touch_pos = np.zeros(0, dtype=np.int64)
        self.touch_at = np.zeros(0, dtype=np.int64)
        self.touch_campaign = np.zeros(0, dtype=np.int64)
        self.campaign_codes: dict[str, int] = {}

    # -- keeping it current ---------------------------------------------------------------
    def bring_forward(self, store) -> None:
        """Make the index hold the store's facts and touches at its current generations (call under ``lock``).
        It follows only what it reads: members, receipts and owners change no preview, and a launch's touches
        are read by campaign, not as every touched customer's facts again."""
        # The generations are read before the data: data newer than them is only read again.
        generation, touched = store.facts_generation(), store.touches_generation()
        if generation != self.generation:
            changed = None if self.generation is None else store.changed_facts(after=self.generation,
                                                                                  upto=generation)
            customers = None
            if changed is not None:
                now = store.current_customers(sorted(changed))
                customers = set(now.values()) | {c for c in changed if c in self.pos}
                if len(customers) * REBUILD_SHARE > max(len(self.ids), 1):
                    customers = None
            if customers is None:
                self._read(store, sorted(set(store.customer_ids()) | set(self.pos)))
                self._touches(store.touch_times(), None)
                self.generation, self.touch_generation = generation, touched
                return
            named = sorted(customers)
            self._read(store, named)
            self._touches(store.touch_times(customers=named), customers)
            self.generation = generation
        if touched != self.touch_generation:
            campaigns = None if self.touch_generation is None else store.touched_campaigns(
                after=self.touch_generation, upto=touched)
            if campaigns is None:
                self._touches(store.touch_times(), None)
            else:
                self._campaign_touches(store.touch_times(campaigns=sorted(campaigns)), campaigns)
            self.touch_generation = touched

    def _read(self, store, customers: list[str]) -> None:
        """Read these customers' facts again, a chunk at a time: every customer's facts as objects at once
        would take hundreds of MB at 100,000 customers (issue 13: 400 MB a process)."""
        for i in range(0, len(customers), CHUNK):
            chunk = customers[i:i + CHUNK]
            self._apply(store.customer_facts(as_of_ms=EVER, customers=chunk), chunk)

    def _word(self, value: str | None) -> int:
        if value is None:
            return -1
        code = self.words.setdefault(value.casefold(), self._next_word)
        self._next_word = max(self._next_word, code + 1)
        return code

    def _apply(self, facts: list[CustomerFacts], read: Collection[str] | None) -> None:
        """Put these customers' facts in; of ``read`` (None: everyone), those without facts are no longer active."""
        fresh = [f.customer_id for f in facts if f.customer_id not in self.pos]
        if fresh:
            start = len(self.ids)
            self.ids += fresh
            self.pos.update((c, start + k) for k, c in enumerate(fresh))
            grow = len(fresh)
            for name, col in self.cols.items():
                self.cols[name] = np.concatenate([col, np.zeros(grow, dtype=col.dtype)])
            self.active = np.concatenate([self.active, np.zeros(grow, dtype=bool)])
            for campaign, held in self.buckets.items():
                self.buckets[campaign] = np.concatenate([held, np.full(grow, -1, dtype=np.int64)])
        gone = set(self.pos) if read is None else {c for c in read if c in self.pos}
        gone -= {f.customer_id for f in facts}
        blank = [self.pos[c] for c in gone]
        self.active[blank] = False
        at = [self.pos[f.customer_id] for f in facts]
        # Erasure (PIPL): the texts only rewritten or blanked rows held are dropped from memory with them.
        before = {int(x) for name in TEXT_COLUMNS for x in self.cols[name][at + blank]}
        rows: dict[str, list[int]] = {name: [] for name in self.cols}
        for f in facts:
            self._row(f, rows)
        for name, values in rows.items():
            self.cols[name][at] = values
            self.cols[name][blank] = BLANK[name]
        self.active[at] = True
        self._forget_words(before - {-1} - {code for name in TEXT_COLUMNS for code in rows[name]})

    def forget(self, customers: Collection[str]) -> None:
        """Erasure (PIPL): these customers' rows blanked and their ids no longer held (their positions hold
        ``""``, inactive: the log's next read puts their anonymous names in as new rows). Call under ``lock``."""
        named = [c for c in customers if c in self.pos]
        if not named:
            return
        self._apply([], named)
        at = _codes([self.pos.pop(c) for c in named])
        for p in at.tolist():
            self.ids[p] = ""
        for held in self.buckets.values():
            held[at] = -1
        self._keep_touches(~np.isin(self.touch_pos, at))

    def _forget_words(self, codes: set[int]) -> None:
        """Forget the words of these codes that no row holds any more."""
        unheld = {code for code in codes if not any(np.any(self.cols[name] == code) for name in TEXT_COLUMNS)}
        if unheld:
            self.words = {w: code for w, code in self.words.items() if code not in unheld}

    def _touches(self, rows: list[tuple[str, int, str]], read: Collection[str] | None) -> None:
        """Put in the touches of the customers ``read`` (None: everyone) in place of those held."""
        if read is None:
            self._keep_touches(np.zeros(len(self.touch_pos), dtype=bool))
        else:
            self._keep_touches(~np.isin(self.touch_pos, _codes([self.pos[c] for c in read if c in self.pos])))
        self._add_touches(rows)

    def _campaign_touches(self, rows: list[tuple[str, int, str]], campaigns: Collection[str]) -> None:
        """Put in every touch of these campaigns in place of those held."""
        again = _codes([self.campaign_codes[c] for c in campaigns if c in self.campaign_codes])
        self._keep_touches(~np.isin(self.touch_campaign, again))
        self._add_touches(rows)

    def _keep_touches(self, keep: np.ndarray) -> None:
        self.touch_pos, self.touch_at = self.touch_pos[keep], self.touch_at[keep]
        self.touch_campaign = self.touch_campaign[keep]

    def _add_touches(self, rows: list[tuple[str, int, str]]) -> None:
        pos = self.pos
        codes = {c: self.campaign_codes.setdefault(c, len(self.campaign_codes)) for c in {r[2] for r in rows}}
        # Touches of no indexed customer count for none.
        held = [(pos[c], at, codes[k]) for c, at, k in rows if c in pos]
        if held:
            at, when, campaign = (_codes(list(column)) for column in zip(*held, strict=True))
            self.touch_pos = np.concatenate([self.touch_pos, at])
            self.touch_at = np.concatenate([self.touch_at, when])
            self.touch_campaign = np.concatenate([self.touch_campaign, campaign])

    def touches(self, *, since_ms: int, until_ms: int) -> np.ndarray:
        """Each customer's touches in ``(since, until]`` (``store.touch_counts`` by position)."""
        within = (self.touch_at > since_ms) & (self.touch_at <= until_ms)
        return np.bincount(self.touch_pos[within], minlength=len(self.ids))

    def _row(self, f: CustomerFacts, rows: dict[str, list[int]]) -> None:
        attrs = f.attributes
        born = birth_date(text(attrs, "birthday"))
        newest = f.newest_ms
        try:
            last = -1 if f.last_day is None else date.fromisoformat(f.last_day).toordinal()
        except ValueError:  # a day the launch's reading cannot use: that customer takes the exact path
            last, newest = -1, EVER
        values = {"newest": newest, "tier": self._word(f.tier), "gender": self._word(text(attrs, "gender")),
                  "city": self._word(text(attrs, "city")), "home": self._word(home_store(f.store_days)),
                  "born_y": -1 if born is None else born.year, "born_m": 0 if born is None else born.month,
                  "born_d": 0 if born is None else born.day, "last": last, "frequency": f.purchase_count,
                  "net": f.spend_minor - f.refund_minor,
                  "categories": self.category_sets.setdefault(frozenset(c.casefold() for c in f.categories),
                                                              len(self.category_sets))}
        for channel in CHANNELS:
            given = consent(attrs, channel)
            values[f"consent.{channel}"] = NO_CONSENT if given is None else CONSENTED if given else OPTED_OUT
        for name, value in values.items():
            rows[name].append(value)

    # -- evaluating a filter --------------------------------------------------------------
    def _among(self, column: str, allowed: list[str] | None) -> np.ndarray | None:
        if allowed is None:
            return None
        wanted = [self.words[a.casefold()] for a in allowed if a.casefold() in self.words]
        return np.isin(self.cols[column], _codes(wanted))

    def age_bands(self, on: date) -> np.ndarray:
        """Each customer's age band on a day, as its index in ``AGE_BANDS`` (``age_band``'s rule)."""
        y, m, d = self.cols["born_y"], self.cols["born_m"], self.cols["born_d"]
        age = on.year - y - ((m > on.month) | ((m == on.month) & (d > on.day)))
        bands = np.searchsorted(np.array([limit for limit, _ in AGE_LIMITS]), age, side="right")
        return np.where((y < 0) | (age < 0), AGE_BANDS.index("unknown"), bands)

    def matching(self, rule: AudienceFilter, on: date) -> np.ndarray:
        """Active customers who meet every criterion of a filter without ``p_alive`` (``audience.matches``)."""
        mask = self.active.copy()
        for column, allowed in (("tier", rule.tiers), ("gender", rule.genders), ("city", rule.cities),
                                ("home", rule.home_stores)):
            among = self._among(column, allowed)
            if among is not None:
                mask &= among
        if rule.age_bands is not None:
            mask &= np.isin(self.age_bands(on), _codes([AGE_BANDS.index(b) for b in rule.age_bands]))
        if rule.categories is not None:
            wanted = {c.casefold() for c in rule.categories}
            mask &= np.isin(self.cols["categories"], _codes([code for bought, code in self.category_sets.items()
                                                             if bought & wanted]))
        if rule.recency_days is not None:
            last = self.cols["last"]
            mask &= (last >= 0) & _within(on.toordinal() - last, *_bounds(rule.recency_days))
        if rule.frequency is not None:
            mask &= _within(self.cols["frequency"], *_bounds(rule.frequency))
        if rule.spend is not None:
            low = None if rule.spend.min is None else int(rule.spend.min * 100)
            high = None if rule.spend.max is None else int(rule.spend.max * 100)
            mask &= _within(self.cols["net"], low, high)
        return mask

    def bucket_of(self, campaign_id: str, at: np.ndarray) -> np.ndarray:
        """``audience.bucket`` of the customers at these positions, hashed once per campaign and kept."""
        held = self.buckets.get(campaign_id)
        if held is None:
            held = self.buckets[campaign_id] = np.full(len(self.ids), -1, dtype=np.int64)
            while len(self.buckets) > KEPT_CAMPAIGNS:
                self.buckets.popitem(last=False)
        self.buckets.move_to_end(campaign_id)
        missing = at[held[at] < 0]
        if len(missing):
            prefix, sha = f"{campaign_id}\x00".encode(), hashlib.sha256
            digests = b"".join([sha(prefix + self.ids[p].encode()).digest() for p in missing.tolist()])
            first8 = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 32)[:, :8].copy().view(">u8").ravel()
            held[missing] = (first8 % BUCKETS).astype(np.int64)
        return held[at]


def _bounds(rule: IntRange) -> tuple[int | None, int | None]:
    return rule.min, rule.max


_INDEXES: WeakKeyDictionary = WeakKeyDictionary()
_INDEXES_LOCK = threading.Lock()


def index_for(store: object) -> FactsIndex:
    """The index kept for one store object (forgotten with it)."""
    with _INDEXES_LOCK:
        return _INDEXES.setdefault(store, FactsIndex())


def warm(store: object) -> None:
    """Build the index before the first preview of this process asks for it (at start-up, in the background)."""
    index = index_for(store)
    with index.lock:
        index.bring_forward(store)


def forget(store: object, customers: Collection[str]) -> None:
    """Drop these (erased) customers from the store's index, if this process keeps one."""
    with _INDEXES_LOCK:
        index = _INDEXES.get(store)
    if index is not None:
        with index.lock:
            index.forget(customers)


def keep_current(store: object, *, while_used_s: float) -> bool:
    """Bring the index forward ahead of the next preview, while people preview (the last preview within
    ``while_used_s``), so that a write's customers are read here rather than by the next preview. True when it did;
    a preview bringing it forward meanwhile is not waited for."""
    with _INDEXES_LOCK:
        index = _INDEXES.get(store)
    if index is None or index.used_at is None or time.monotonic() - index.used_at > while_used_s:
        return False
    if not index.lock.acquire(blocking=False):
        return False
    try:
        index.bring_forward(store)
    finally:
        index.lock.release()
    return True


def tally(campaign_id: str, definition: Definition, *, deps: Deps, as_of: datetime) -> Tally | None:
    """What launching at ``as_of`` would count, from the kept index; None for a filter it cannot evaluate
    (``p_alive``). Touches count in the contact-cap period either side of the moment, as the launch counts them
    (``launch.recent_touches``)."""
    rule = definition.audience
    if rule.p_alive is not None:
        return None
    as_of_ms = epoch_ms(as_of)
    on = as_of.astimezone(ZoneInfo(deps.settings.timezone)).date()
    cap = deps.config.contact_cap
    index = index_for(deps.store)
    with index.lock:
        index.used_at = time.monotonic()
        index.bring_forward(deps.store)
        later = index.active & (index.cols["newest"] > as_of_ms)  # facts after the moment: the exact path
        matched = index.matching(rule, on) & ~later
        state = index.cols[f"consent.{definition.channel}"]
        excluded: Counter = Counter({"no_consent": int(np.count_nonzero(matched & (state == NO_CONSENT))),
                                     "opted_out": int(np.count_nonzero(matched & (state == OPTED_OUT)))})
        allowed = matched & (state == CONSENTED)
        span = deps.config.contact_cap_days * DAY_MS
        touched = index.touches(since_ms=as_of_ms - span, until_ms=as_of_ms + span)
        capped = touched >= cap
        excluded["contact_cap"] = int(np.count_nonzero(allowed & capped))
        members = np.flatnonzero(allowed & ~capped)
        control = int(np.count_nonzero(index.bucket_of(campaign_id, members)
                                       < int(definition.control_share * BUCKETS)))
        treatment = len(members) - control
        late = {index.ids[p]: int(touched[p]) for p in np.flatnonzero(later).tolist()}
    count = int(np.count_nonzero(matched))
    if late:
        facts = deps.store.customer_facts(as_of_ms=as_of_ms, fields=launch_fields(definition),
                                          categories=rule.categories is not None, customers=sorted(late))
        found = plan(campaign_id, definition, facts, on=on, recent_touches=late, cap=cap).tally()
        count += found.matched
        excluded.update(found.excluded)
        control += found.control
        treatment += found.treatment
    return Tally(count, excluded, treatment, control)
