"""Evaluating customers and announcing what changed: the step every use case ends with (messages, commands, timers).

Every change to an alert is written in the same store transaction as the ``AlertChanged`` and
``ViewPartUpdated`` messages that announce it (the outbox).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.alerts.domain.evaluate import evaluate
from services.alerts.domain.facts import owner_of
from services.alerts.domain.model import p_alive_of
from services.alerts.domain.workflow import (
    Alert,
    Change,
    give_back,
    move,
    reconcile,
)
from services.alerts.handlers import Deps
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.messages import AlertChanged, ViewPartUpdated, part_version, part_version_floor
from shared.contract.view_parts import AlertsPart
from shared.observability.trace_context import message_headers
from shared.storage.base import OutboxMessage
from shared.streaming.outbox import outbox_message

log = logging.getLogger(__name__)

SEVERITY_ORDER = {"red": 0, "yellow": 1, "info": 2}


class Writer:
    """Writes alert changes within the current transaction and collects the messages announcing them."""

    def __init__(self, deps: Deps, as_of: datetime) -> None:
        self.deps, self.store, self.as_of = deps, deps.store, as_of
        self.changed: set[str] = set()
        self._news: list[AlertChanged] = []
        self.counts: dict[str, int] = defaultdict(int)
        # The active alerts of the customers evaluated, kept current by every write: the view parts are built
        # from them rather than read back.
        self._active: dict[str, dict[str, Alert]] = {}
        self._holder: dict[str, str] = {}

    def write(self, changes: list[Change]) -> None:
        """Persist changes and note what to announce."""
        if not changes:
            return
        self.store.put_alerts([c.alert for c in changes])
        self.store.cover([(k, c.alert.alert_id) for c in changes for k in c.triggers])
        for c in changes:
            self.counts[c.kind] += 1
            self._hold(c.alert)
            if c.announce:
                self.changed.add(c.alert.customer_id)
                a = c.alert
                self._news.append(AlertChanged(alert_id=a.alert_id, customer_id=a.customer_id, type=a.type,
                                               severity=a.severity, status=a.status, store_id=a.store_id,
                                               at=self.as_of))

    def _hold(self, alert: Alert) -> None:
        before = self._holder.pop(alert.alert_id, None)
        if before is not None:
            self._active[before].pop(alert.alert_id, None)
        if alert.active and alert.customer_id in self._active:
            self._active[alert.customer_id][alert.alert_id] = alert
            self._holder[alert.alert_id] = alert.customer_id

    def rehome(self, touched: set[str]) -> None:
        """Alerts follow the survivor of a merge and go back to their customer when it is undone."""
        store = self.store
        owners = store.customers_of(sorted(touched))
        for gone in sorted(c for c in touched if owners[c] != c):
            survivor = owners[gone]
            for alert in sorted(store.active_alerts([gone]), key=lambda a: a.alert_id):
                held = {a.type: a for a in store.active_alerts([survivor])}.get(alert.type)
                self.changed.add(gone)
                self.write(move(alert, to=survivor, held=held, at=self.as_of))
        # Alerts raised for any record of these customers but held elsewhere come back (one query for all of
        # them: every new customer changes the mapping too, and almost none has anything to give back).
        home = store.members(sorted(c for c in touched if owners[c] == c))
        for alert in sorted(store.alerts_from(sorted(home)), key=lambda a: a.alert_id):
            cust = home[alert.origin_id]
            if alert.resolution == "merged":
                into = store.alert(alert.merged_into) if alert.merged_into else None
                if into is not None and store.customer_of(into.customer_id) == cust:
                    continue  # folded into an alert that is still this customer's
                self.write(give_back(alert, to=cust, into=into, at=self.as_of))
            elif alert.customer_id != cust:
                self.changed.add(alert.customer_id)
                held = {a.type: a for a in store.active_alerts([cust])}.get(alert.type)
                self.write(move(alert, to=cust, held=held, at=self.as_of))

    def evaluate(self, customers: list[str]) -> None:
        """Bring these customers' alerts in line with their facts as of now; set when each is due next."""
        if not customers:
            return
        store, deps = self.store, self.deps
        rules = deps.rules.current()
        facts = store.facts(customers)
        day = self.as_of.astimezone(deps.zone).date()
        if any(r.type == "churn_model" and r.enabled for r in rules):
            # A model fitted as of a later day knows purchases after as_of (a replay): never use one.
            stored = store.latest_model(until=day)
            alive = p_alive_of(stored.model if stored else None, list(facts.values()), day)
            # Facts come from the store without one: only the customers the model scores need a copy.
            facts |= {c: replace(facts[c], p_alive=p) for c, p in alive.items()}
        active: dict[str, dict[str, Alert]] = defaultdict(dict)
        self._active.update((c, {}) for c in customers)
        for a in store.active_alerts(customers):
            active[a.customer_id][a.type] = a
            self._hold(a)
        evaluations = {c: evaluate(facts[c], rules, self.as_of, deps.zone, day=day) for c in customers}
        keys = {c: [t.key for d in e.desired.values() for t in d.triggers] for c, e in evaluations.items()}
        covers = store.covered([k for ks in keys.values() for k in ks])
        due: dict[str, int | None] = {}
        changes: list[Change] = []
        taken: dict[str, str] = {}  # trigger -> the other customer's live alert it is taken from
        for cust in customers:
            evaluation = evaluations[cust]
            if not evaluation.desired and not active[cust]:
                # Most customers: nothing wanted, nothing held, so nothing to reconcile and no owner to work out;
                # the next check is the evaluation's (what ``reconcile`` would return).
                due[cust] = due_ms(evaluation.next_check) if evaluation.next_check else None
                continue
            # A trigger answered by another customer's live alert moved here with its record (an unmerge that
            # came after the alert was raised on the survivor): it is this customer's to answer now.
            theirs = {k: covers[k].alert_id for k in keys[cust]
                      if k in covers and covers[k].active and covers[k].customer_id != cust}
            covered = {k for k in keys[cust] if k in covers and k not in theirs}
            mine, nxt = reconcile(cust, evaluation, rules, current=active[cust],
                                  last_resolved=facts[cust].last_resolved, covered=covered, owner=owner_of(facts[cust]),
                                  as_of=self.as_of)
            changes += mine
            taken |= {k: theirs[k] for c in mine for k in c.triggers if k in theirs}
            due[cust] = due_ms(nxt) if nxt else None
        changes += self._given_up(taken, changes)
        self.write(changes)  # customers do not share alerts: one bulk write for all of them
        store.set_due(due)
        self.counts["evaluated"] += len(customers)

    def _given_up(self, taken: dict[str, str], changes: list[Change]) -> list[Change]:
        """The alerts whose triggers were taken over count one repeat less for each."""
        if not taken:
            return []
        latest = {c.alert.alert_id: c.alert for c in changes}
        out = []
        for alert_id, n in sorted(Counter(taken.values()).items()):
            alert = latest.get(alert_id) or self.store.alert(alert_id)
            if alert is not None:
                out.append(Change(replace(alert, repeats=max(0, alert.repeats - n), updated_at=self.as_of), "updated"))
        return out

    def republish(self, customers) -> None:
        """Republish these customers' view parts even if their alerts did not change (after a merge)."""
        self.changed |= set(customers)

    def outbox(self) -> list[OutboxMessage]:
        """The messages announcing everything written: alert changes, then each changed customer's view part."""
        if not self._news and not self.changed:
            return []  # most small batches change no alert: no message, so no context (a "create" span) for one
        settings = self.deps.settings
        # One message context for everything this unit of work announces.
        headers = message_headers(settings.topic(topics.ALERTS_EVENTS))
        out = [outbox_message(settings, topics.ALERTS_EVENTS, n.customer_id, n, headers=headers) for n in self._news]
        customers = sorted(self.changed)
        if not customers:
            return out
        versions = self.store.next_versions(customers, floor=part_version_floor())
        active: dict[str, list[Alert]] = {c: list(self._active[c].values()) for c in customers if c in self._active}
        unknown = [c for c in customers if c not in active]
        for a in self.store.active_alerts(unknown) if unknown else []:
            active.setdefault(a.customer_id, []).append(a)
        for cust in customers:
            part = ViewPartUpdated(customer_id=cust, part="alerts",
                                   value=AlertsPart(open=open_items(active.get(cust, []))),
                                   version=part_version(versions[cust]))
            out.append(outbox_message(settings, topics.ALERTS_EVENTS, cust, part, headers=headers))
        return out


def due_ms(moment: datetime) -> int:
    """A due time in epoch milliseconds, rounded up: a scan as of the same millisecond but before the moment
    itself would find nothing changed, and would find the customer due again, for ever."""
    return -((_EPOCH - moment) // _MS)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def open_items(alerts: list[Alert]) -> list[dict]:
    """A customer's open alerts as the single customer view shows them, most severe first."""
    ranked = sorted(alerts, key=lambda a: (SEVERITY_ORDER[a.severity], iso_utc(a.opened_at), a.alert_id))
    return [{"alert_id": a.alert_id, "type": a.type, "severity": a.severity, "status": a.status,
             "store_id": a.store_id, "opened_at": iso_utc(a.opened_at), "action": a.action, "repeats": a.repeats}
            for a in ranked]

