"""Delivery receipts (issue 14): ``crm.delivery`` events identity resolved, kept against their touch, and
the follow-up touch a reply earns.

- A receipt is matched by its ``touch_id`` (the touch names the campaign and the member as launched).
  A reply identity resolved to another customer than the touch's member (both followed through the merges
  campaigns knows) still counts for the touch's status (the message was delivered and answered) but is
  ``mismatched``: it moves no one on (a gateway's mix-up must not mail A the sample B asked for).
  A receipt is kept once per event ``(source, id)``: a redelivered or repeated receipt changes nothing.
- A receipt for a touch campaigns never recorded is dead-lettered ``unknown_touch``. It cannot be early:
  a touch is recorded in the transaction that launches it, before it is published to any channel system,
  so a channel system cannot know its id sooner. It is not marked as seen, so a re-drive re-reads it.
- A ``replied`` receipt for a campaign's first touch, when the campaign is running and defines a
  ``follow_up`` one of whose ``match`` keywords the reply holds (or none), sends the follow-up touch: once per member
  (its touch id is derived from the campaign and the member, recorded in the same transaction), unless the
  member opted out of the follow-up's channel (the reply asked for it: no other consent is needed).
- The reply text is personal data: read here to match, never stored, logged or put in a span.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from services.campaigns.domain.audience import consent
from services.campaigns.domain.definition import Definition
from services.campaigns.domain.delivery import Receipt, keywords, reply_matches
from services.campaigns.handlers import Deps
from services.campaigns.handlers.outbox import outbox_message
from services.campaigns.handlers.view_part import refresh_views
from services.campaigns.store import TouchRow
from shared.access import masking
from shared.contract import topics
from shared.contract.events import DeliveryEvent
from shared.contract.facts import epoch_ms
from shared.contract.messages import CampaignTouched, Read
from shared.observability.trace_context import inject_headers, message_headers
from shared.storage.base import OutboxMessage
from shared.storage.membership import memberships_of
from shared.streaming.batch import BatchOutcome, Decoded, Incoming, dead_letter_for, message_span

MAX_REASON_CHARS = 64
UNKNOWN_TOUCH = "unknown_touch"


def follow_up_touch_id(campaign_id: str, member_id: str) -> str:
    """The follow-up touch of one member (the same however many replies earn it)."""
    return "t_" + hashlib.sha256(f"follow_up\x00{campaign_id}\x00{member_id}".encode()).hexdigest()[:24]


def reason_of(event: DeliveryEvent) -> str | None:
    """A failure reason as kept and shown: a channel system's code, with any phone, e-mail or date inside
    masked (a gateway may echo the number it could not reach), cut to a short label."""
    reason = (event.data.reason or "").strip()
    return masking.scrub(reason)[:MAX_REASON_CHARS] if reason else None


@dataclass(frozen=True)
class _Reply:
    touch: TouchRow
    text: str | None


def receipts(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Keep a batch's delivery receipts against their touches; send the follow-ups replies earn."""
    store = deps.store
    # Like every resolved event, a receipt carries its record's mapping to its customer.
    affected = store.apply_memberships([m for one in items for m in memberships_of(one.item.message)])
    touches = store.touches_by_id({one.item.event.data.touch_id for one in items})
    # Who a reply came from and whom its touch went to, each as the customer they are now (a merge since the
    # launch, or a staff phone change, leaves a real reply its member's).
    now_of = store.current_customers({x for one in items if one.item.event.data.status == "replied"
                                      for x in (one.item.message.customer_id, _member(one, touches))} - {None})
    matched: list[tuple[Decoded[Read], Receipt]] = []
    letters: list[Incoming] = []
    for one in items:
        event: DeliveryEvent = one.item.event
        with message_span("campaigns", one.msg, {"crm.touch_id": event.data.touch_id,
                                                 "crm.delivery.status": event.data.status}):
            touch = touches.get(event.data.touch_id)
            if touch is None:
                letters.append(one.msg)
                continue
            mismatched = (event.data.status == "replied"
                          and now_of[one.item.message.customer_id] != now_of[touch.customer_id])
            matched.append((one, Receipt(event.source, event.id, touch.touch_id, touch.campaign_id,
                                         event.data.status, reason_of(event) if event.data.status == "failed"
                                         else None, epoch_ms(event.time), mismatched)))
    fresh = {(r.source, r.id) for r in store.add_receipts([r for _, r in matched])}
    replies: list[_Reply] = []
    for one, receipt in matched:
        if (receipt.source, receipt.id) not in fresh:
            outcome.duplicates += 1
            continue
        fresh.discard((receipt.source, receipt.id))  # the same receipt twice in one batch counts once
        outcome.processed += 1
        outcome.counts[f"receipt:{receipt.status}"] += 1
        touch = touches[receipt.touch_id]
        if receipt.mismatched:
            outcome.counts["follow_up:mismatched_reply"] += 1
        elif receipt.status == "replied" and touch.step == "initial":
            replies.append(_Reply(touch, one.item.event.data.reply_text))
    out = _follow_ups(replies, deps=deps, outcome=outcome)
    out += refresh_views(affected, deps=deps)
    return out + _dead_letters(letters, deps=deps, outcome=outcome)


def _member(one: Decoded[Read], touches: dict[str, TouchRow]) -> str | None:
    touch = touches.get(one.item.event.data.touch_id)
    return touch.customer_id if touch is not None else None


def _follow_ups(replies: list[_Reply], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """The follow-up touch for each member whose reply moves them on, recorded once per member."""
    store, rows, plans = deps.store, [], {}
    now = deps.clock()
    for reply in replies:
        campaign_id = reply.touch.campaign_id
        if campaign_id not in plans:
            row = store.campaign(campaign_id)
            definition = Definition.model_validate(row.definition) if row is not None else None
            # Only a running campaign moves members on: a paused, completed or cancelled one sends nothing.
            plans[campaign_id] = definition if row is not None and row.status == "running" else None
        definition = plans[campaign_id]
        step = definition.follow_up if definition is not None else None
        if step is None:
            continue
        if not reply_matches(keywords(step.match), reply.text):
            outcome.counts["follow_up:no_match"] += 1
            continue
        rows.append(TouchRow(follow_up_touch_id(campaign_id, reply.touch.customer_id), campaign_id,
                             reply.touch.customer_id, step.channel or definition.channel, epoch_ms(now),
                             step="follow_up"))
    if not rows:
        return []
    # The touch goes to the customer the member is now (a merge since the launch moved them).
    now_of = store.current_customers({r.customer_id for r in rows})
    # The reply asked for the follow-up, so no consent is needed beyond it, but an opt-out of its channel holds.
    held = store.field_values(set(now_of.values()), fields={f"consent.{r.channel}" for r in rows} | {
        "wechat_following"})
    allowed = [r for r in rows if consent(held.get(now_of[r.customer_id], {}), r.channel) is not False]
    outcome.counts["follow_up:opted_out"] += len(rows) - len(allowed)
    sent = store.add_touches(allowed)
    headers = inject_headers()
    out = []
    for r in allowed:
        if r.touch_id not in sent:
            continue  # followed up before: once per member
        sent.discard(r.touch_id)
        follow_up = plans[r.campaign_id].follow_up
        body = CampaignTouched(touch_id=r.touch_id, campaign_id=r.campaign_id, customer_id=now_of[r.customer_id],
                               channel=r.channel, offer=follow_up.offer, at=now, step="follow_up")
        out.append(outbox_message(deps, topics.CAMPAIGN_TOUCHES, now_of[r.customer_id], body, headers))
        outcome.counts["follow_up:sent"] += 1
    return out


def _dead_letters(letters: list[Incoming], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Receipts for no touch campaigns holds, dead-lettered with the reason (as ``shared.streaming.batch``
    does for a message that cannot be decoded)."""
    out = []
    topic = deps.settings.topic(topics.DEADLETTER)
    for msg in letters:
        letter = dead_letter_for(msg, UNKNOWN_TOUCH, "no campaign touch has this touch_id", deps.clock,
                                 service="campaigns")
        if deps.store.dead_letter_add(letter):
            outcome.dead_lettered += 1
            outcome.counts[f"dead_letter:{UNKNOWN_TOUCH}"] += 1
            out.append(OutboxMessage(topic, msg.value, msg.key, message_headers(topic, letter.headers)))
    return out
