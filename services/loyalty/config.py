"""Loyalty's own typed settings (``CRM_LOYALTY_*``): the default rule book and the schedule.

The rules given here make one rule version effective from the beginning of time. A rules file
(``CRM_LOYALTY_RULES_FILE``, JSON) overrides them section by section and may hold several versions
with their ``effective_from``; it is re-read whenever its modification time changes.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.loyalty.domain.rules import RuleBook, rule_book

log = logging.getLogger(__name__)


def _pairs(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        if not key or not value:
            raise ValueError(f"expected NAME=VALUE pairs separated by commas, got {part!r}")
        out[key.strip()] = value.strip()
    return out


class LoyaltySettings(BaseSettings):
    """Loyalty's settings, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="CRM_LOYALTY_", env_file=".env", extra="ignore")

    rules_file: str | None = None
    points_per_unit: str = "1"
    unit_amount: str = "1.00"
    # "skincare=2,makeup=1.5": a multiplier on the part of an order spent in that category (or SKU).
    category_multipliers: str = ""
    sku_multipliers: str = ""
    tier_multipliers: str = ""
    # "day=5000,month=20000": most points a member earns per calendar period.
    caps: str = ""
    expiry_mode: Literal["days", "month_end", "year_end", "never"] = "days"
    expiry_days: int = Field(365, ge=0)
    expiry_months: int = Field(12, ge=0)
    expiry_notice_days: int = Field(30, ge=0)
    tier_window_months: int = Field(3, ge=1, le=24)
    tier_review_months: int = Field(1, ge=1, le=12)
    tier_grace_months: int = Field(0, ge=0, le=24)
    statement_expiring_days: int = Field(90, ge=1)
    # Each account keeps a checkpoint at the start of the month this many months back, and settles from
    # there; an event dated before it makes that settle start from the whole history (0: never checkpoint).
    checkpoint_lag_months: int = Field(2, ge=0, le=120)
    # Below this many purchases before the horizon a replay of every fact is cheaper than a checkpoint.
    checkpoint_min_purchases: int = Field(20, ge=0)
    # A settle that replayed this many purchases since its checkpoint keeps another where it stopped, so the next
    # in-order event replays only what is new (0: only the monthly checkpoint). Fewer: more checkpoint writes.
    checkpoint_recent_purchases: int = Field(32, ge=0)
    # How often the scheduler looks for expiries, announcements and tier reviews that fell due.
    schedule_interval_s: float = Field(10.0, gt=0)
    schedule_batch: int = Field(200, ge=1)
    # An account whose settling fails for a reason that is not transient waits this long before the next
    # try, so one broken account neither stops the schedule nor is retried at every tick.
    schedule_retry_s: float = Field(900.0, gt=0)
    # Issue 14: a manual adjustment of more than this many points (either way) waits for a second person's
    # approval (an admin who did not ask for it); up to it, an operator's adjustment applies at once.
    approval_threshold: int = Field(1000, ge=0)
    # Run the service "as of" another moment (a replay or a drill): its clock starts there and runs on.
    clock_start: AwareDatetime | None = None

    def base_rules(self) -> dict[str, Any]:
        """The rule book these settings describe, in the rules-file format."""
        return {
            "earning": {
                "points_per_unit": self.points_per_unit, "unit_amount": self.unit_amount,
                "categories": _pairs(self.category_multipliers), "skus": _pairs(self.sku_multipliers),
                "tiers": _pairs(self.tier_multipliers), "caps": {k: int(v) for k, v in _pairs(self.caps).items()},
            },
            "expiry": {"mode": self.expiry_mode, "days": self.expiry_days, "months": self.expiry_months,
                       "notice_days": self.expiry_notice_days},
            "tiers": {"window_months": self.tier_window_months, "review_every_months": self.tier_review_months,
                      "grace_months": self.tier_grace_months},
        }



class RulesSource:
    """The rule book from settings and the rules file, re-read when the file changes."""

    def __init__(self, config: LoyaltySettings, zone) -> None:
        self._base = config.base_rules()
        self._path = config.rules_file
        self._zone = zone
        self._seen: float | None = None
        self._book = rule_book(self._base, None, zone)
        if self._path:
            self.book()

    def book(self) -> RuleBook:
        """The current rule book (a broken file keeps the last good one and says so in the log)."""
        if self._path:
            try:
                mtime = os.stat(self._path).st_mtime_ns
            except OSError:
                log.error("rules file %s cannot be read; keeping the rules in force", self._path)
                return self._book
            if mtime != self._seen:
                self._seen = mtime
                try:
                    with open(self._path, encoding="utf-8") as f:
                        self._book = rule_book(self._base, json.load(f), self._zone)
                    log.info("loyalty rules loaded from %s (%d versions)", self._path, len(self._book.versions))
                except (ValueError, OSError) as exc:
                    log.error("rules file %s is not valid (%s); keeping the rules in force", self._path,
                              type(exc).__name__)
        return self._book


def shifted_clock(start: datetime):
    """A clock that starts at ``start`` and runs at the speed of the system clock."""
    import time

    began = time.monotonic()

    def now() -> datetime:
        from datetime import timedelta

        return start + timedelta(seconds=time.monotonic() - began)

    return now
