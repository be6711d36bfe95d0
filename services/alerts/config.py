"""The alerts service's own settings (``CRM_ALERTS_*``) and its reloadable rule book."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.alerts.domain.rules import DEFAULT_RULES, InvalidRules, Rule, parse_rules

log = logging.getLogger(__name__)


class AlertsConfig(BaseSettings):
    """Scheduler, SLA and churn-model settings, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="CRM_ALERTS_", env_file=".env", extra="ignore")

    # How often the scheduler evaluates the customers that are due; a scan must finish well within it.
    scan_interval_s: float = Field(60.0, gt=0)
    scan_enabled: bool = True
    # Customers evaluated per store transaction during a scan.
    scan_chunk: int = Field(500, ge=1, le=5000)
    # One worker scans at a time; its lease lapses after this long if it dies.
    scan_lease_s: float = Field(120.0, gt=0)
    # POST /v1/alerts/scan?as_of= changes live alerts, so its moment must lie within this window around the
    # service clock: back far enough to re-run a moment the scheduler missed (whoever it evaluates is due again
    # after that moment, so the next scheduled scan corrects what no longer holds), forward only by clock skew.
    # Outside it the scan is refused (422).
    scan_as_of_past_h: float = Field(24.0, ge=0, le=24 * 31)
    scan_as_of_future_s: float = Field(300.0, ge=0, le=3600)
    # A JSON document of rule overrides (see README); re-read when the file changes.
    rules_file: str | None = None
    # Time to resolve per severity.
    sla_hours_red: float = Field(24.0, gt=0)
    sla_hours_yellow: float = Field(72.0, gt=0)
    sla_hours_info: float = Field(168.0, gt=0)
    # How often the service checks that a churn model fitted as of the current day exists (fitting one
    # when not): the model is refitted once per calendar day, and the scan uses the latest fit.
    model_check_interval_s: float = Field(600.0, gt=0)
    # Default horizon of expected purchases in the churn-model routes.
    model_weeks: float = Field(12.0, gt=0)
    # How long the pages of the ranked churn list share one ranking of the whole base (0: rank at every request);
    # purchases that arrive meanwhile show after it.
    ranking_cache_s: float = Field(60.0, ge=0)

    def sla_hours(self) -> dict[str, float]:
        """Hours to resolve, by severity."""
        return {"red": self.sla_hours_red, "yellow": self.sla_hours_yellow, "info": self.sla_hours_info}


class ClvSettings(BaseSettings):
    """Issue 15, clv: the horizon, discount and margin of customer lifetime value (``CRM_CLV_*``)."""

    model_config = SettingsConfigDict(env_prefix="CRM_CLV_", env_file=".env", extra="ignore")

    # Months of purchases counted (each of 4.345 weeks, as lifetimes counts them), discounted at the monthly rate.
    horizon_months: int = Field(12, ge=1, le=120)
    monthly_discount_rate: float = Field(0.01, ge=0, le=1)
    # The share of spend that is margin: 1 values customers by spend, a gross margin by profit.
    margin: float = Field(1.0, gt=0, le=1)


class RulesInForce:
    """The rules in force: the defaults, or the rules file re-read whenever it changes.

    A file that becomes invalid is refused with its reasons logged and the previous rules stay in force;
    an invalid file at start-up stops the service (``InvalidRules``). ``fingerprint`` names the rules in
    force, so the scheduler can tell (across workers and restarts) whether everyone was scanned with them.
    """

    def __init__(self, path: str | None = None, rules: tuple[Rule, ...] | None = None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._rules = rules or DEFAULT_RULES
        if self.path is not None:
            self._rules = parse_rules(self.path.read_text())
            self._stamp = self._stat()
        self.fingerprint = _fingerprint(self._rules)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)  # type: ignore[arg-type]
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> tuple[Rule, ...]:
        """The rules in force, reloading the file if it changed since the last look."""
        if self.path is None:
            return self._rules
        with self._lock:
            stamp = self._stat()
            if stamp is not None and stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._rules = parse_rules(self.path.read_text())
                    self.fingerprint = _fingerprint(self._rules)
                    log.info("alerts: rules reloaded from %s", self.path.name)
                except (InvalidRules, OSError) as exc:
                    log.error("alerts: rules file refused, keeping the rules in force: %s", exc)
            return self._rules


def _fingerprint(rules: tuple[Rule, ...]) -> str:
    return hashlib.sha256(json.dumps([r.model_dump() for r in rules], sort_keys=True).encode()).hexdigest()[:32]
