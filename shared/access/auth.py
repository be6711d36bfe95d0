"""The one answer to "who is this?" for every service: an API key from the keyring, or a signed staff token."""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.access.keys import KeySource
from shared.access.principals import Caller
from shared.access.revocations import REVOCATIONS_AUDIENCE, PolledRevocations, Revocations
from shared.access.tokens import Tokens, looks_like_token
from shared.http.errors import Unauthorized
from shared.settings import Settings


class Authenticator:
    """Checks ``Authorization: Bearer <key or token>`` against the current keys and the token secret."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time,
                 revocations: Revocations | None = None) -> None:
        self.keys = KeySource(settings.api_keys, settings.api_keys_file, name_key=settings.name_key())
        self.tokens = Tokens(settings.token_key(), ttl_s=settings.token_ttl_s, clock=clock)
        # Identity replaces this with its store's list (services/identity/app.py).
        self.revocations: Revocations = revocations or PolledRevocations(settings, tokens=self.tokens)

    def authenticate(self, header: str) -> Caller:
        """The caller the header names; ``Unauthorized`` with a code saying what is wrong otherwise."""
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized("missing_credentials", "send Authorization: Bearer <key>")
        caller = self.keys.keyring().match(credential.encode())
        if caller is not None:
            return caller
        if looks_like_token(credential):
            return self.not_revoked(self.tokens.verify(credential))
        raise Unauthorized("invalid_key", "that API key is not known")

    def not_revoked(self, caller: Caller) -> Caller:
        """``caller`` unless it is a signed-out token (``Unauthorized`` ``token_revoked``)."""
        if caller.token_id is not None and self.revocations.revoked(caller.token_id):
            raise Unauthorized("token_revoked", "the token was signed out; sign in again")
        return caller

    def service_token(self, header: str) -> str | None:
        """The service a token for identity's list of signed-out tokens names, or None (never a caller)."""
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.tokens.verify_for(credential.strip(), audience=REVOCATIONS_AUDIENCE)

    def identify(self, header: str) -> Caller | None:
        """The caller the header names, or None (for budgets, which must not answer 401 themselves)."""
        try:
            return self.authenticate(header)
        except Unauthorized:
            return None
