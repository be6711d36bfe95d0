"""Identity's use cases behind the HTTP routes that change something: channel ingestion, unmerge, and
closing a conflict after review."""

from __future__ import annotations

import json
import logging
from typing import Any

from services.identity.domain.cleaning import prepare
from services.identity.handlers import Deps
from services.identity.handlers.consume import announce_owners, sale_key
from shared.access import masking
from shared.access.audit import AuditEntry, entry
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.events import InvalidEvent, check_depth, check_size
from shared.contract.messages import CustomerMerged
from shared.http.errors import Conflict, NotFound, Unavailable
from shared.service import Publish
from shared.streaming.kafka import Outgoing
from shared.streaming.outbox import outbox_message

log = logging.getLogger(__name__)


class PublishUnavailable(Unavailable):
    """The broker did not acknowledge the batch's events in time: none of them counts as accepted.

    The producer may still deliver some of them later; the client sends the same events again (same
    ``source`` and ``id``) and the consumer ignores what it sees twice."""


def ingest(items: list[Any], *, deps: Deps, publish: Publish) -> list[dict]:
    """Channel ingestion over HTTP: publish the valid events to their channel topics, report each.

    Every item goes through the checks a consumer makes of a message (size, nesting, decoding), so
    what is accepted here is never dead-lettered there for its shape. Each is validated once, from the
    JSON the body held, and what is published is exactly what was validated. Raises PublishUnavailable
    when the broker does not acknowledge: the caller then has no accepted event and sends the batch
    again (the consumer ignores what it sees twice).
    """
    results: list[dict] = []
    outgoing: list[Outgoing] = []
    limit = deps.settings.max_event_bytes
    for index, item in enumerate(items):
        try:
            _check_message(item, limit)
            prepared = prepare(item, deps.cleaning)
            payload = prepared.payload.encode()
            check_size(payload, limit)  # what is published, defaults filled in, must fit as well
        except InvalidEvent as exc:
            results.append({"index": index, "status": "rejected", "code": exc.code, "reasons": exc.reasons})
            continue
        event = prepared.event
        topic = deps.settings.topic(topics.CHANNEL_TOPICS[event.channel])
        # The key spreads a customer's events over partitions without naming the customer.
        key = (deps.pseudo(*prepared.idents[0]) if prepared.idents else sale_key(event)).encode()
        outgoing.append(Outgoing(topic, payload, key))
        results.append({"index": index, "status": "accepted", "id": event.id, "source": event.source,
                        "topic": topic})
    if outgoing:
        try:
            publish(outgoing)
        except Exception as exc:
            log.warning("ingestion: publishing %d events failed (%s)", len(outgoing), type(exc).__name__)
            raise PublishUnavailable("publish_unavailable", "the broker did not confirm the events; send the "
                                     "same events again (same ids) after Retry-After: duplicates are ignored") from exc
    return results


def _check_message(item: Any, max_bytes: int) -> None:
    """Raise InvalidEvent unless one posted event could be published as a channel's message: an object,
    not too deep, valid JSON (no lone surrogate, no NaN) and no larger than ``max_bytes`` as JSON."""
    if not isinstance(item, dict):
        raise InvalidEvent("invalid_event", ["event: must be a JSON object"])
    check_depth(item)
    try:
        raw = json.dumps(item, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        raise InvalidEvent("invalid_json", ["event: a string holds a lone surrogate, which is not valid UTF-8"]) \
            from None
    except ValueError:
        raise InvalidEvent("invalid_json", ["event: NaN and Infinity are not JSON numbers"]) from None
    check_size(raw, max_bytes)


def unmerge(customer_id: str, merge_id: str, *, by: str, deps: Deps) -> dict[str, Any]:
    """Undo a merge: both customers get back their own identifiers, attributes and history."""
    store = deps.store
    with store.transaction():
        merge = store.merge_row(merge_id)
        record = store.record(merge.survivor_id) if merge is not None else None
        # A made-up id and another customer's (another store's) merge answer alike, so merge ids cannot be
        # probed through a customer one may see; only a merge of this customer can be "undone already".
        if merge is None or customer_id not in (merge.survivor_id, merge.merged_id,
                                                record.root_id if record else None):
            raise NotFound("merge_not_found", "no such merge of this customer")
        if merge.undone_at is not None:
            raise Conflict("merge_already_undone", "this merge was undone already")
        moved = store.unmerge(merge_id, by=by, at=iso_utc(deps.clock()))
        body = CustomerMerged(kind="customer.unmerged", merge_id=merge_id, survivor_id=merge.survivor_id,
                              merged_id=merge.merged_id, records=moved, at=deps.clock())
        # Both customers' owning stores may move with the records given back.
        owners = announce_owners({store.record(merge.survivor_id).root_id, merge.merged_id}, deps=deps)
        outbox = store.outbox_add([*owners,
                                   outbox_message(deps.settings, topics.CUSTOMER_MERGED, merge.survivor_id, body)])
    return {"merge_id": merge_id, "survivor_id": merge.survivor_id, "restored_id": merge.merged_id,
            "records": moved, "outbox": outbox}


def close_conflict(conflict_id: str, *, status: str, by: str, note: str | None, deps: Deps) -> None:
    """Mark a conflict reviewed (``dismissed`` or ``resolved``) with who and why."""
    with deps.store.transaction():
        if not deps.store.set_conflict_status(conflict_id, status=status, by=by, note=note):
            raise NotFound("conflict_not_found", "no such conflict")


# -- issue 12, audit (H5) -------------------------------------------------------------------------


def audit(caller: Any, *, deps: Deps, action: str, customer_id: str | None = None, target: str | None = None,
          reason: str | None = None) -> AuditEntry:
    """Record one act of ``caller`` in the audit log, now (joins the caller's transaction when there is one).

    The one line identity's routes use, e.g. ``commands.audit(caller, deps=deps, action="privacy.erasure",
    customer_id=cid, reason=body.reason)``."""
    one = entry(caller, service="identity", action=action, at=deps.clock(), customer_id=customer_id,
                target=target, reason=reason)
    keep_audit_entries([one], deps=deps)
    return one


def keep_audit_entries(entries: list[AuditEntry], *, deps: Deps) -> None:
    """Keep audit entries, the customer's own names masked in their reasons: staff write "Mrs Wang called"
    and only identity knows that Wang is the customer's name."""
    store = deps.store
    kept = []
    for one in entries:
        record = store.record(one.customer_id) if one.reason and one.customer_id else None
        names: tuple[str, ...] = ()
        if record is not None:
            group = store.group(record.root_id)
            names = masking.known_names(v.value for v in store.attributes(group) if v.field == "name")
        if one.reason:
            # Every reason, with a customer or without (a conflict closed, a campaign moved, a redrive), is
            # scrubbed again here: an entry published by another service is kept only as identity scrubs it.
            one = one.model_copy(update={"reason": masking.scrub(one.reason, names)})
        kept.append(one)
    store.audit_add(kept)
