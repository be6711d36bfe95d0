"""Identity's own settings, read from ``CRM_IDENTITY_*`` environment variables (the platform-wide ones
are in ``shared.settings.Settings``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IdentityConfig(BaseSettings):
    """What only identity reads, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="CRM_IDENTITY_", env_file=".env", extra="ignore")

    # Events per POST /v1/events request: more is refused whole (422 batch_too_large). The 16 MiB body
    # limit (CRM_MAX_BODY_BYTES) holds a full batch of 16 KiB events.
    ingest_max_batch: int = Field(1000, ge=1, le=10_000)
