"""Alerts and their workflow: desired alerts diffed against held ones, ack and resolve, merges, SLA.

One open alert per customer and type: a new occurrence while it is open is a repeat. Every trigger
(an occurrence or a condition episode) is covered by one alert once, so a duplicate or replayed
event never raises a second alert, and a resolved episode does not come back; a suppression window
after a resolution keeps a persisting condition from coming straight back. Alert ids derive from
the customer, the type and the trigger that opened it, so a replay produces the same ids (in another
arrival order another trigger may open the alert: another id, never a second alert; the store itself
refuses a second active alert of one type for a customer). An alert raised for an occurrence belongs
to the record it happened to, and a trigger follows its record through an unmerge, so the alerts end
the same in every arrival order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from services.alerts.domain.evaluate import Evaluation
from services.alerts.domain.facts import Owner
from services.alerts.domain.rules import SEVERITIES, Rule, Severity

Status = Literal["open", "acknowledged", "resolved"]
ACTIVE: tuple[Status, ...] = ("open", "acknowledged")
SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert with its workflow state."""

    alert_id: str
    customer_id: str
    type: str
    severity: Severity
    status: Status
    store_id: str | None
    manager: str | None
    action: str
    opened_at: datetime
    updated_at: datetime
    last_trigger_at: datetime
    # The record it was raised for (an occurrence's record, else the customer): where it goes back to if a merge
    # is undone, whichever customer the record was part of when the alert was raised.
    origin_id: str
    repeats: int = 0
    detail: dict = field(default_factory=dict)
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    resolution: Literal["manual", "cleared", "expired", "merged"] | None = None
    note: str | None = None
    merged_into: str | None = None  # the survivor's alert this one was folded into by a merge
    folded: int = 0  # repeats it added to that alert
    prev_status: Status | None = None
    acknowledged_note: str | None = None  # the acknowledgement's own note (``note`` is the resolution's)

    @property
    def active(self) -> bool:
        """Open or acknowledged."""
        return self.status in ACTIVE


def alert_id(customer_id: str, type_: str, trigger: str) -> str:
    """The deterministic id of the alert a trigger opens for a customer."""
    return "al_" + hashlib.sha256(f"{customer_id}\0{type_}\0{trigger}".encode()).hexdigest()[:20]


Kind = Literal["raised", "repeated", "updated", "acknowledged", "resolved", "moved", "reopened"]


@dataclass(frozen=True, slots=True)
class Change:
    """An alert written; ``announce`` says whether it is news (an ``AlertChanged``)."""

    alert: Alert
    kind: Kind
    triggers: tuple[str, ...] = ()
    announce: bool = True


def _higher(a: Severity, b: Severity) -> Severity:
    return a if SEVERITIES.index(a) >= SEVERITIES.index(b) else b


def reconcile(customer_id: str, evaluation: Evaluation, rules: tuple[Rule, ...], *, current: dict[str, Alert],
              last_resolved: dict[str, datetime], covered: set[str], owner: Owner,
              as_of: datetime) -> tuple[list[Change], datetime | None]:
    """The changes that bring a customer's alerts in line with what the facts call for, and the next check."""
    changes: list[Change] = []
    later = [evaluation.next_check] if evaluation.next_check else []
    for rule in rules:
        if not rule.enabled:
            continue
        want, cur = evaluation.desired.get(rule.type), current.get(rule.type)
        if want is None and cur is None:
            continue  # most rules of most customers: nothing wanted, nothing held
        manager = owner.manager if rule.owner == "account_manager" else None
        store_id = owner.store_id or (cur.store_id if cur is not None else None)
        if want is None:
            if not rule.is_event:
                why = evaluation.cleared.get(rule.type)
                done = _resolved(cur, SYSTEM, why.note if why else "the condition no longer holds", "cleared", as_of)
                changes.append(Change(replace(done, detail={**cur.detail, **why.detail}) if why else done, "resolved"))
                continue
            expiry = cur.last_trigger_at + timedelta(days=rule.expires_days) if rule.expires_days else None
            if expiry is not None and expiry <= as_of:
                changes.append(Change(_resolved(cur, SYSTEM, "no new occurrence", "expired", as_of), "resolved"))
                continue
            later += [expiry] if expiry else []
            if (store_id, manager) != (cur.store_id, cur.manager):  # the owner changed (a merge, a new home store)
                changes.append(Change(replace(cur, store_id=store_id, manager=manager, updated_at=as_of), "updated"))
            continue
        new = sorted((t for t in want.triggers if t.key not in covered), key=lambda t: (t.at, t.key))
        keys = tuple(t.key for t in new)
        if cur is not None:
            moved = replace(cur, detail=want.detail, store_id=store_id, manager=manager)
            if new and rule.is_event:
                changes.append(Change(replace(
                    moved, status="open", repeats=cur.repeats + len(new), updated_at=as_of,
                    severity=_higher(cur.severity, want.severity),
                    last_trigger_at=max(cur.last_trigger_at, new[-1].at)), "repeated", keys))
            elif new or moved != cur:
                # News only when the alert changed hands; a refreshed detail is not.
                rerouted = (moved.store_id, moved.manager) != (cur.store_id, cur.manager)
                changes.append(Change(replace(moved, updated_at=as_of), "updated", keys, announce=rerouted))
            if rule.expires_days is not None:
                later.append(max([cur.last_trigger_at, *(t.at for t in new)]) + timedelta(days=rule.expires_days))
            continue
        if not new:
            continue
        done = last_resolved.get(rule.type)  # when an alert of this type was last resolved (folds excluded)
        if done is not None and rule.suppress_days:
            until = done + timedelta(days=rule.suppress_days)
            if as_of < until:
                later.append(until)
                continue
        opened = Alert(
            alert_id=alert_id(customer_id, rule.type, new[0].key), customer_id=customer_id, type=rule.type,
            severity=want.severity, status="open", store_id=owner.store_id, manager=manager, action=rule.action,
            opened_at=as_of, updated_at=as_of, last_trigger_at=new[-1].at, origin_id=new[0].record or customer_id,
            repeats=len(new) - 1 if rule.is_event else 0, detail=want.detail)
        changes.append(Change(opened, "raised", keys))
        if rule.expires_days is not None:
            later.append(opened.last_trigger_at + timedelta(days=rule.expires_days))
    future = [t for t in later if t > as_of]
    return changes, min(future) if future else None


def _resolved(alert: Alert, by: str, note: str | None, resolution: str, at: datetime) -> Alert:
    return replace(alert, status="resolved", resolved_by=by, resolved_at=at, resolution=resolution, note=note,
                   updated_at=at)


class WorkflowError(ValueError):
    """A transition the alert's state does not allow."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def acknowledge(alert: Alert, *, by: str, note: str | None, at: datetime) -> Change | None:
    """Open -> acknowledged (None when it already is)."""
    if alert.status == "resolved":
        raise WorkflowError("alert_resolved", "a resolved alert cannot be acknowledged")
    if alert.status == "acknowledged":
        return None
    return Change(replace(alert, status="acknowledged", acknowledged_by=by, acknowledged_at=at, acknowledged_note=note,
                          updated_at=at), "acknowledged")


def resolve(alert: Alert, *, by: str, note: str | None, at: datetime) -> Change:
    """Open or acknowledged -> resolved by a person, with a note."""
    if alert.status == "resolved":
        raise WorkflowError("alert_resolved", "this alert was resolved already")
    return Change(_resolved(alert, by, note, "manual", at), "resolved")


def move(alert: Alert, *, to: str, held: Alert | None, at: datetime) -> list[Change]:
    """An active alert follows its customer into the survivor of a merge; folded into the survivor's own
    alert of the same type when there is one (one open alert per customer and type)."""
    if held is None:
        return [Change(replace(alert, customer_id=to, updated_at=at), "moved")]
    folded = replace(_resolved(alert, SYSTEM, f"merged into {held.alert_id}", "merged", at),
                     merged_into=held.alert_id, folded=alert.repeats + 1, prev_status=alert.status)
    grown = replace(held, repeats=held.repeats + alert.repeats + 1, severity=_higher(held.severity, alert.severity),
                    last_trigger_at=max(held.last_trigger_at, alert.last_trigger_at), updated_at=at)
    return [Change(folded, "resolved"), Change(grown, "repeated")]


def give_back(alert: Alert, *, to: str, into: Alert | None, at: datetime) -> list[Change]:
    """Undo ``move`` when the merge is undone: the alert returns to the customer it was raised for."""
    if alert.resolution != "merged":
        return [Change(replace(alert, customer_id=to, updated_at=at), "moved")]
    restored = replace(alert, customer_id=to, status=alert.prev_status or "open", resolved_by=None, resolved_at=None,
                       resolution=None, note=None, merged_into=None, folded=0, prev_status=None, updated_at=at)
    out = [Change(restored, "reopened")]
    if into is not None and into.active:
        out.append(Change(replace(into, repeats=max(0, into.repeats - alert.folded), updated_at=at), "updated"))
    return out


@dataclass(frozen=True)
class Sla:
    """How old an alert is and whether it broke its severity's time to resolve."""

    age_s: int
    due_at: datetime
    breached: bool


def sla(alert: Alert, *, hours: dict[str, float], now: datetime) -> Sla:
    """Age (until resolution, or now) and the SLA due time of an alert's severity."""
    end = alert.resolved_at or now
    due = alert.opened_at + timedelta(hours=hours[alert.severity])
    return Sla(max(0, int((end - alert.opened_at).total_seconds())), due, end > due)
