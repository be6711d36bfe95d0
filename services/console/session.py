"""The signed-in session: the staff token sealed (Fernet) in an HttpOnly, SameSite=Strict cookie, and the
per-session CSRF token htmx sends back as a header."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.settings import Settings

COOKIE = "crm_console"
CSRF_HEADER = "X-CSRF-Token"


def sealer(settings: Settings) -> Fernet:
    """A Fernet key derived from the platform's token secret: every console process of one platform agrees,
    and a cookie sealed by another platform opens nowhere here."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"crm-console-session").derive(
        settings.token_key())
    return Fernet(base64.urlsafe_b64encode(key))


@dataclass(frozen=True)
class Session:
    """Who is signed in: their bearer token (never shown in a page), name, CSRF token and token expiry."""

    token: str
    user: str
    csrf: str
    expires_at: float

    @classmethod
    def new(cls, token: str, *, user: str, ttl_s: int) -> Session:
        """A session for a token identity just issued."""
        return cls(token=token, user=user, csrf=secrets.token_urlsafe(24), expires_at=time.time() + ttl_s)

    def seal(self, fernet: Fernet) -> str:
        """The cookie value."""
        body = {"t": self.token, "u": self.user, "c": self.csrf, "e": self.expires_at}
        return fernet.encrypt(json.dumps(body).encode()).decode()

    @classmethod
    def open(cls, value: str | None, fernet: Fernet) -> Session | None:
        """The session in a cookie, or None when absent, forged, or past its token's expiry."""
        if not value:
            return None
        try:
            body = json.loads(fernet.decrypt(value.encode()))
        except (InvalidToken, ValueError):
            return None
        session = cls(token=body["t"], user=body["u"], csrf=body["c"], expires_at=float(body["e"]))
        return session if session.expires_at > time.time() else None
