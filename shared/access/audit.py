"""The audit log: who read personal data unmasked and who changed what, kept append-only by identity.

Each service records its own people's writes and reveals: identity keeps its entries in its own store;
loyalty, alerts and campaigns put an ``AuditRecorded`` message in their outbox (on their own topic),
which identity already consumes and keeps, once per ``audit_id``. ``GET /v1/audit`` on identity's port
lists them all. An entry names the customer by id and the thing by id; its reason (the ``X-Reason``
header, or the reason a route takes) is scrubbed of phones, e-mails and dates before it is kept.

A route records its entry right after its change commits, in a transaction of its own: the use cases
keep their own transactions (some retry them), and a crash between the two loses an entry, never a
change (the trade-off is in the README).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.access import masking
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.messages import AuditRecorded

REASON_MAX = 500


_FIELDS = tuple(name for name in AuditRecorded.model_fields if name != "kind")


class AuditEntry(AuditRecorded):
    """One audited act: who (display name or key id, role, scope), when, what, on which customer.

    Its fields are those of the ``AuditRecorded`` message that carries it to identity, defined once there;
    ``at`` is fixed-width UTC text (``shared.clock.iso_utc``), so it sorts as time. A store row's values
    build one in field order: ``AuditEntry(*row)``."""

    def __init__(self, *values: Any, **fields: Any) -> None:
        if len(values) > len(_FIELDS):
            raise TypeError(f"AuditEntry takes at most {len(_FIELDS)} positional values")
        super().__init__(**dict(zip(_FIELDS, values, strict=False)), **fields)

    def as_dict(self) -> dict[str, Any]:
        """The entry as plain fields (store rows, messages, the HTTP schema)."""
        return self.model_dump(exclude={"kind"})


@dataclass(frozen=True)
class AuditQuery:
    """What ``GET /v1/audit`` filters by; every part optional."""

    actor: str | None = None
    customer_id: str | None = None
    action: str | None = None
    since: str | None = None  # inclusive, iso_utc
    until: str | None = None  # exclusive, iso_utc


def actor_of(caller: Any) -> str:
    """Who the caller is in the log: its display name (a staff account's user name, an API key's label)."""
    return caller.name


def entry(caller: Any, *, service: str, action: str, at: datetime, customer_id: str | None = None,
          target: str | None = None, reason: str | None = None) -> AuditEntry:
    """The entry of one act by ``caller``; the reason is scrubbed of personal data and bounded."""
    kept = masking.scrub(reason.strip())[:REASON_MAX] if reason and reason.strip() else None
    return AuditEntry(audit_id="au_" + uuid.uuid4().hex, at=iso_utc(at), service=service, actor=actor_of(caller),
                      role=caller.role, scope=str(caller.scope), action=action, customer_id=customer_id,
                      target=target, reason=kept)


class Auditor:
    """Records a service's audit entries: ``keep`` stores them (identity), else ``publish`` sends them
    through the service's outbox to identity."""

    def __init__(self, *, service: str, clock: Callable[[], datetime],
                 keep: Callable[[list[AuditEntry]], None]) -> None:
        self.service = service
        self.clock = clock
        self._keep = keep

    def __call__(self, caller: Any, *, action: str, customer_id: str | None = None, target: str | None = None,
                 reason: str | None = None) -> AuditEntry:
        """Record one act of ``caller`` now; returns the entry kept."""
        one = entry(caller, service=self.service, action=action, at=self.clock(), customer_id=customer_id,
                    target=target, reason=reason)
        self._keep([one])
        return one


def kept_by(store: Any) -> Callable[[list[AuditEntry]], None]:
    """Keep entries in ``store`` itself (identity, which holds the log)."""
    return store.audit_add


def published_by(store: Any, *, topic: str, relay: Callable[[], Callable[[list], None] | None]
                 ) -> Callable[[list[AuditEntry]], None]:
    """Keep entries by publishing them through ``store``'s outbox on ``topic`` (the relay is looked up
    when needed: ``app.create_app`` binds it after the routes are built)."""
    from shared.contract.messages import audit_message

    def publish(entries: list[AuditEntry]) -> None:
        with store.transaction():
            queued = store.outbox_add([audit_message(e, topic) for e in entries])
        send = relay()
        if send is not None:
            send(queued)

    return publish


# Where each service publishes its entries: its own topic, which identity consumes already.
AUDIT_TOPICS = {"loyalty": topics.LOYALTY_EVENTS, "alerts": topics.ALERTS_EVENTS, "campaigns": topics.CAMPAIGN_EVENTS}


def auditor(service: str, deps: Any) -> Auditor:
    """The auditor of ``service`` over anything with its ``store``, ``settings``, ``clock`` and ``relay`` (its
    handlers' ``Deps``, or the ``Service``). One line records an act, e.g. an erasure on identity:
    ``auditor("identity", deps)(caller, action="privacy.erasure", customer_id=cid, reason=reason)``."""
    if service == "identity":
        keep = kept_by(deps.store)
    else:
        keep = published_by(deps.store, topic=deps.settings.topic(AUDIT_TOPICS[service]),
                            relay=lambda: getattr(deps, "relay", None))
    return Auditor(service=service, clock=deps.clock, keep=keep)
