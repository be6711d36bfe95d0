"""The one answer to "who is this?" for every service: an API key from the keyring, or a signed staff token."""

from __future__ import annotations

import time
from collections.abc import Callable

from shared.access.keys import KeySource
from shared.access.principals import Caller
from shared.access.tokens import Tokens, looks_like_token
from shared.http.errors import Unauthorized
from shared.settings import Settings


class Authenticator:
    """Checks ``Authorization: Bearer <key or token>`` against the current keys and the token secret."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.keys = KeySource(settings.api_keys, settings.api_keys_file, name_key=settings.name_key())
        self.tokens = Tokens(settings.token_key(), ttl_s=settings.token_ttl_s, clock=clock)

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
            return self.tokens.verify(credential)
        raise Unauthorized("invalid_key", "that API key is not known")

    def identify(self, header: str) -> Caller | None:
        """The caller the header names, or None (for budgets, which must not answer 401 themselves)."""
        try:
            return self.authenticate(header)
        except Unauthorized:
            return None
