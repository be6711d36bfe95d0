"""Signing secrets at rest: sealed under the host's keyring with the service's own key (never shredded: a
subscription is nobody's personal data), bound to the subscription, so a sealed secret copied onto another
subscription does not open."""

from __future__ import annotations

from shared.storage.crypto import SERVICE, KeyRing, is_sealed


def _field(webhook_id: str) -> str:
    return f"webhooks.secret.{webhook_id}"


def seal_secret(keys: KeyRing, webhook_id: str, secret: str) -> str:
    """The secret as it is stored; one already sealed stays as it is."""
    return secret if is_sealed(secret) else keys.seal(SERVICE, _field(webhook_id), secret)  # type: ignore[return-value]


def open_secret(keys: KeyRing, webhook_id: str, stored: str) -> str:
    """The secret a stored value holds; one kept in clear by an older version is read as it is."""
    opened = keys.open(SERVICE, _field(webhook_id), stored)
    assert opened is not None, "the service key is never shredded"
    return opened


def needs_sealing(stored: str) -> bool:
    """Whether a stored secret is still in clear (kept before secrets were sealed)."""
    return not is_sealed(stored)
