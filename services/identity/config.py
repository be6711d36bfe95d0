"""Identity's own settings, read from ``CRM_IDENTITY_*`` environment variables (the platform-wide ones
are in ``shared.settings.Settings``)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class IdentityConfig(BaseSettings):
    """What only identity reads, validated at start-up."""

    # Inputs stay out of validation errors: the name index key is a secret.
    model_config = SettingsConfigDict(env_prefix="CRM_IDENTITY_", env_file=".env", extra="ignore",
                                      hide_input_in_errors=True)

    # Events per POST /v1/events request: more is refused whole (422 batch_too_large). The 16 MiB body
    # limit (CRM_MAX_BODY_BYTES) holds a full batch of 16 KiB events.
    ingest_max_batch: int = Field(1000, ge=1, le=10_000)
    # Issue 12 (export): where identity reaches the other services' APIs, ``name=url`` comma-separated
    # (``loyalty=http://loyalty:8002,...``); a service not named is at CRM_API_HOST (127.0.0.1 when that is
    # 0.0.0.0) on its port from the platform settings, as ``crm up`` runs it.
    peer_urls: str = Field("", max_length=2000)
    # Issue 16 (search by name): the HMAC key of the names' blind index (services/identity/domain/names.py), at
    # least 32 characters, apart from CRM_MASTER_KEY and CRM_PSEUDONYM_SECRET; required in prod. Changing it
    # rebuilds the index from the sealed names when identity starts.
    name_index_key: SecretStr | None = Field(None, min_length=32)

    @field_validator("name_index_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty line in .env (the template's) means "not set", as for the platform's other secrets.
        return None if value == "" else value

    def name_index_key_bytes(self, env: str) -> bytes:
        """The name index key; in dev a fixed development key stands in when none is set."""
        from services.identity.domain.names import DEV_NAME_INDEX_KEY

        if self.name_index_key is not None:
            return self.name_index_key.get_secret_value().encode()
        if env == "prod":
            raise ValueError("CRM_IDENTITY_NAME_INDEX_KEY (at least 32 characters) is required in prod")
        return DEV_NAME_INDEX_KEY

    def peer_url(self, name: str) -> str | None:
        """The base URL of another service's API, when set here."""
        for item in self.peer_urls.split(","):
            key, _, url = item.partition("=")
            if key.strip() == name and url.strip():
                return url.strip().rstrip("/")
        return None
