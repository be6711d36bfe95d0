"""The campaigns service's own settings (``CRM_CAMPAIGNS_*``), read once and validated at start-up."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

AttributionModel = Literal["last_touch", "first_touch", "linear"]


class CampaignsSettings(BaseSettings):
    """Contact rules, the attribution model shared by every campaign, and the scheduler's pace."""

    model_config = SettingsConfigDict(env_prefix="CRM_CAMPAIGNS_", env_file=".env", extra="ignore")

    # At most this many touches per customer in any window of ``contact_cap_days`` days, across campaigns.
    contact_cap: int = Field(4, ge=1, le=1000)
    contact_cap_days: int = Field(30, ge=1, le=366)
    # How a purchase inside the windows of several campaigns is credited: one model for all campaigns,
    # otherwise two campaigns could each claim the same purchase.
    attribution: AttributionModel = "last_touch"
    # How often a worker looks for scheduled campaigns to launch and running ones to complete.
    scheduler_interval_s: float = Field(5.0, gt=0)
    # Issue 16: while people preview audiences (the last preview within ``preview_keep_s``), the preview's index of
    # customers' facts is brought forward this often in the background, so a preview after a launch or a batch
    # of events finds it current.
    preview_keep_interval_s: float = Field(10.0, gt=0)
    preview_keep_s: float = Field(600.0, ge=0)
    # Issue 16: the worker measures, as it starts, the results of the campaigns a person is likely to open (running,
    # paused, and completed ones whose results window ended within ``results_keep_days``) and, while someone read
    # results within ``results_keep_s``, brings them forward every ``results_keep_interval_s`` in the background.
    results_keep_days: int = Field(30, ge=0, le=366)
    results_keep_interval_s: float = Field(10.0, gt=0)
    results_keep_s: float = Field(600.0, ge=0)
    # Audience members per view-part refresh query; bounds memory on very large launches.
    refresh_chunk: int = Field(20_000, ge=100)
    # A launch's or cancellation's messages are published this many at a time after the response, under
    # a lease that keeps the outbox sweeper off them. The lease must outlast the longest a chunk can take
    # (five minutes of publish retries, then five of delete retries); if the relaying process dies, the
    # sweeper sends what is left once it runs out.
    relay_chunk: int = Field(5000, ge=1)
    relay_lease_s: float = Field(900.0, ge=1)
