"""Who a campaign reaches: customer profiles as of a day, the audience filter, contact rules, the split.

Pure functions over facts the store folds per customer. Assignment to treatment or control is a
hash of (campaign, customer): the same inputs give the same group on every launch and replay.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from services.campaigns.domain.definition import AudienceFilter, Definition
from shared.contract.facts import FieldValue

BUCKETS = 1_000_000
EXCLUSION_REASONS = ("no_consent", "opted_out", "contact_cap")

# The profile fields campaigns keeps: what filters and contact rules read, nothing more
# (names, e-mail addresses and phones stay with identity).
KEPT_FIELDS = frozenset({"gender", "birthday", "city", "wechat_following"})


def kept(field: str) -> bool:
    """Whether campaigns keeps a profile field."""
    return field in KEPT_FIELDS or field.startswith("consent.")


def flag(field: str) -> bool:
    """Whether a kept field holds a yes/no value (consents, the WeChat follow state)."""
    return field == "wechat_following" or field.startswith("consent.")


@dataclass(frozen=True)
class CustomerFacts:
    """What the store knows about one customer as of a moment (over all its records)."""

    customer_id: str
    purchase_count: int = 0
    purchase_days: int = 0
    first_day: str | None = None
    last_day: str | None = None
    spend_minor: int = 0
    refund_minor: int = 0
    # (store, purchase days there, most recent day there)
    store_days: tuple[tuple[str, int, str], ...] = ()
    categories: frozenset[str] = frozenset()
    # The newest value of each profile, consent and follow field.
    attributes: Mapping[str, FieldValue] = field(default_factory=dict)
    tier: str | None = None
    # The time of the newest purchase, refund or profile value folded in (ms; 0: none): a customer whose
    # newest fact is after a moment has facts a reading as of that moment leaves out.
    newest_ms: int = 0


@dataclass(frozen=True)
class Profile:
    """A customer as the audience filter sees them, frozen into the snapshot at launch."""

    customer_id: str
    tier: str | None
    age_band: str
    gender: str | None
    city: str | None
    home_store: str | None
    recency_days: int | None
    frequency: int
    net_spend_minor: int
    categories: frozenset[str]
    returning: bool  # bought before the launch


@dataclass(frozen=True)
class Member:
    """One audience member as launched: their group and the profile the breakdowns use."""

    customer_id: str
    group: str
    bucket: int
    tier: str | None
    age_band: str
    home_store: str | None
    returning: bool
    purchases: int = 0  # purchases before the launch (the purchase-history segment)
    touches_before: int = 0  # touches in the contact-cap period before the launch (the contact-history segment)


@dataclass(frozen=True)
class Tally:
    """What evaluating an audience counts: matches, exclusions by reason, members per group."""

    matched: int
    excluded: Counter
    treatment: int
    control: int


@dataclass
class Plan:
    """The outcome of evaluating an audience: members by group and exclusions by reason."""

    matched: int = 0
    members: list[Member] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)

    def count(self, group: str) -> int:
        """How many members are in a group."""
        return sum(1 for m in self.members if m.group == group)

    def tally(self) -> Tally:
        """The counts of this plan."""
        return Tally(self.matched, self.excluded, self.count("treatment"), self.count("control"))


def home_store(store_days: Iterable[tuple[str, int, str]]) -> str | None:
    """The store with most purchase days; ties go to the most recent day, then the lowest id
    (the rule identity shows in the single customer view)."""
    ranked = sorted(store_days, key=lambda s: s[0])
    ranked.sort(key=lambda s: (s[1], s[2]), reverse=True)
    return ranked[0][0] if ranked else None


# Ages below each limit fall in its band; the rest are 55+ (the bands of ``definition.AGE_BANDS``).
AGE_LIMITS = ((25, "<25"), (35, "25-34"), (45, "35-44"), (55, "45-54"))


def birth_date(birthday: object) -> date | None:
    """The day a birthday value (``YYYY-MM-DD``) names, or None when it names none."""
    try:
        return date.fromisoformat(str(birthday))
    except ValueError:
        return None


def age_band(birthday: object, on: date) -> str:
    """The age band of a birthday (``YYYY-MM-DD``) on a day; ``unknown`` without a usable one."""
    born = birth_date(birthday)
    if born is None:
        return "unknown"
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    if age < 0:
        return "unknown"
    for limit, band in AGE_LIMITS:
        if age < limit:
            return band
    return "55+"


def text(attrs: Mapping[str, FieldValue], name: str) -> str | None:
    """A profile field's value as text (None when unknown)."""
    value = attrs.get(name)
    return None if value is None or value.value is None else str(value.value)


def profile(facts: CustomerFacts, on: date) -> Profile:
    """The customer's profile on a day (in the business's timezone)."""
    attrs = facts.attributes
    recency = None if facts.last_day is None else (on - date.fromisoformat(facts.last_day)).days
    return Profile(
        customer_id=facts.customer_id, tier=facts.tier, age_band=age_band(text(attrs, "birthday"), on),
        gender=text(attrs, "gender"), city=text(attrs, "city"), home_store=home_store(facts.store_days),
        recency_days=recency, frequency=facts.purchase_count, net_spend_minor=facts.spend_minor - facts.refund_minor,
        categories=facts.categories, returning=facts.purchase_count > 0,
    )


def _among(value: str | None, allowed: list[str] | None) -> bool:
    if allowed is None:
        return True
    return value is not None and value.casefold() in {a.casefold() for a in allowed}


def matches(rule: AudienceFilter, who: Profile, p_alive: float | None = None) -> bool:
    """Whether a customer meets every criterion the filter gives."""
    if not (_among(who.tier, rule.tiers) and _among(who.gender, rule.genders) and _among(who.city, rule.cities)
            and _among(who.home_store, rule.home_stores)):
        return False
    if rule.age_bands is not None and who.age_band not in rule.age_bands:
        return False
    if rule.categories is not None and not ({c.casefold() for c in who.categories}
                                            & {c.casefold() for c in rule.categories}):
        return False
    if rule.recency_days is not None and not rule.recency_days.holds(who.recency_days):
        return False
    if rule.frequency is not None and not rule.frequency.holds(who.frequency):
        return False
    if rule.spend is not None and not rule.spend.holds_minor(who.net_spend_minor):
        return False
    return rule.p_alive is None or rule.p_alive.holds(p_alive)


def consent(attrs: Mapping[str, FieldValue], channel: str) -> bool | None:
    """Whether the customer may be contacted on a channel: True, False (opted out) or None (never asked).

    WeChat messages reach followers of the official account, so for ``wechat`` the newer of the
    consent and the follow state decides: an unfollow after a consent is an opt-out.
    """
    names = [f"consent.{channel}"] + (["wechat_following"] if channel == "wechat" else [])
    held = [attrs[n] for n in names if n in attrs]
    if not held:
        return None
    return bool(max(held, key=FieldValue.order).value)


def exclusion(attrs: Mapping[str, FieldValue], channel: str, recent_touches: int, cap: int) -> str | None:
    """Why a matching customer may not be contacted, or None: consent first, then the contact cap."""
    given = consent(attrs, channel)
    if given is None:
        return "no_consent"
    if given is False:
        return "opted_out"
    if recent_touches >= cap:
        return "contact_cap"
    return None


def filter_fields(rule: AudienceFilter) -> set[str]:
    """The profile fields a filter reads (the birthday always: the age band is frozen with every member)."""
    return {"birthday"} | ({"gender"} if rule.genders else set()) | ({"city"} if rule.cities else set())


def launch_fields(definition: Definition) -> set[str]:
    """The profile fields a launch reads: the filter's and the consent for the channel."""
    out = filter_fields(definition.audience) | {f"consent.{definition.channel}"}
    return out | ({"wechat_following"} if definition.channel == "wechat" else set())


def bucket(campaign_id: str, customer_id: str) -> int:
    """A stable number in [0, 1,000,000) for a customer in a campaign."""
    digest = hashlib.sha256(f"{campaign_id}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def group_of(bucket_value: int, control_share: Decimal) -> str:
    """Control when the bucket falls below the control share, treatment otherwise."""
    return "control" if bucket_value < int(control_share * BUCKETS) else "treatment"


@dataclass
class Matched:
    """What a pass over customers' facts finds: matches, consent exclusions, and the consenting matches as
    members before the contact cap (``touches_before`` 0). Passes over disjoint chunks of customers add up
    (``add``) to the pass over them all, so an audience can be evaluated a chunk of facts at a time."""

    matched: int = 0
    refused: Counter = field(default_factory=Counter)
    open: list[Member] = field(default_factory=list)

    def add(self, other: Matched) -> None:
        """Take in a pass over other customers."""
        self.matched += other.matched
        self.refused.update(other.refused)
        self.open += other.open


def candidates(campaign_id: str, definition: Definition, facts: Iterable[CustomerFacts], *, on: date,
               p_alive: Mapping[str, float] | None = None) -> Matched:
    """Who matches the filter, who of them consent withholds and why, and the others with their group."""
    out = Matched()
    scores = p_alive or {}
    for one in facts:
        who = profile(one, on)
        if not matches(definition.audience, who, scores.get(one.customer_id)):
            continue
        out.matched += 1
        given = consent(one.attributes, definition.channel)
        if given is not True:
            out.refused["no_consent" if given is None else "opted_out"] += 1
            continue
        b = bucket(campaign_id, one.customer_id)
        out.open.append(Member(one.customer_id, group_of(b, definition.control_share), b, who.tier, who.age_band,
                               who.home_store, who.returning, who.frequency))
    return out


def settle(found: Matched, *, recent_touches: Mapping[str, int], cap: int) -> Plan:
    """The plan once the contact cap applies to the consenting matches (after consent, as ``exclusion``)."""
    out = Plan(found.matched, excluded=Counter(found.refused))
    for m in found.open:
        touched = recent_touches.get(m.customer_id, 0)
        if touched >= cap:
            out.excluded["contact_cap"] += 1
        else:
            out.members.append(replace(m, touches_before=touched) if touched else m)
    out.members.sort(key=lambda m: m.customer_id)
    return out


def plan(campaign_id: str, definition: Definition, facts: Iterable[CustomerFacts], *, on: date,
         recent_touches: Mapping[str, int], cap: int, p_alive: Mapping[str, float] | None = None) -> Plan:
    """Evaluate the audience: who matches, who is excluded and why, who is in which group.

    Exclusions apply before the split, so treatment and control are drawn from the same people.
    """
    found = candidates(campaign_id, definition, facts, on=on, p_alive=p_alive)
    return settle(found, recent_touches=recent_touches, cap=cap)
