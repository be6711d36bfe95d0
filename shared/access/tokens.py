"""Short-lived bearer tokens for signed-in staff: JWT (HS256) carrying role, scope and name, verified by every
service with the secret they share through settings (``CRM_TOKEN_SECRET``)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import jwt

from shared.access.keys import parse_scope
from shared.access.principals import Caller
from shared.http.errors import Unauthorized
from shared.settings import ROLES

ALGORITHM = "HS256"
ISSUER = "crm"
STAFF_PREFIX = "staff:"


def looks_like_token(presented: str) -> bool:
    """Whether a bearer credential has a JWT's shape (three dot-separated parts, a JSON header)."""
    return presented.startswith("eyJ") and presented.count(".") == 2


class Tokens:
    """Issues and verifies tokens under one secret, reading time from ``clock`` (tests set it)."""

    def __init__(self, secret: bytes, *, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock

    @property
    def secret(self) -> bytes:
        """The signing secret (for a service's own short-lived token to identity)."""
        return self._secret

    def issue(self, caller: Caller) -> str:
        """A signed token for a signed-in staff account, valid for ``ttl_s`` seconds from now."""
        now = int(self._clock())
        claims = {"iss": ISSUER, "sub": caller.name, "role": caller.role, "scope": str(caller.scope),
                  "name": caller.name, "iat": now, "exp": now + self.ttl_s,
                  # The id sign-out revokes (shared/access/revocations.py): unique per token, random.
                  "jti": secrets.token_urlsafe(16)}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue_for(self, audience: str, *, name: str, ttl_s: int) -> str:
        """A service's own token for one purpose (``audience``): only :meth:`verify_for` with that audience
        accepts it, never :meth:`verify` (PyJWT refuses a token with an ``aud`` when no audience is asked)."""
        now = int(self._clock())
        claims = {"iss": ISSUER, "sub": name, "aud": audience, "iat": now, "exp": now + ttl_s}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify_for(self, token: str, *, audience: str) -> str | None:
        """The name a service's token for ``audience`` carries; None for any other credential or an expired one."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER, audience=audience,
                                options={"verify_exp": False, "require": ["exp", "iat", "sub", "iss", "aud"]})
        except jwt.PyJWTError:
            return None
        sub, exp = claims["sub"], claims["exp"]
        if not isinstance(sub, str) or not isinstance(exp, int) or exp <= self._clock():
            return None
        return sub

    def verify(self, token: str) -> Caller:
        """The caller a token names; ``Unauthorized`` (``token_expired`` or ``invalid_token``) otherwise."""
        try:
            # Expiry is checked below against our clock, so that tests and the issuing service agree on "now".
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"verify_exp": False, "require": ["exp", "iat", "sub", "iss"]})
            role, sub, exp = claims["role"], claims["sub"], int(claims["exp"])
            scope = parse_scope(str(claims["scope"]), where="token")
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):  # PyJWTError: an unusable key too
            raise Unauthorized("invalid_token", "the token is not valid; sign in again") from None
        if role not in ROLES or not isinstance(sub, str) or not sub:
            raise Unauthorized("invalid_token", "the token is not valid; sign in again")
        if exp <= self._clock():
            raise Unauthorized("token_expired", "the token has expired; sign in again")
        jti = claims.get("jti")
        # A token issued before tokens had ids carries none: it cannot be revoked, and expires as before.
        return Caller(STAFF_PREFIX + sub, role, scope, name=str(claims.get("name") or sub),
                      token_id=jti if isinstance(jti, str) and jti else None, token_expires=exp)
