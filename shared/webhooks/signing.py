"""Delivery signatures, the way Stripe signs its webhooks: ``CRM-Signature: t=<unix>,v1=<hex>``.

``v1`` is the hex HMAC-SHA256 of ``"<t>.<body>"`` under the subscription's secret. The timestamp is
inside the signed text, so a receiver that refuses old timestamps also refuses replays of a captured
delivery. A receiver verifies with :func:`verify` (or the ten lines in the README, without this package).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

HEADER = "CRM-Signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300


def new_secret() -> str:
    """A fresh signing secret (shown once, when a subscription is created without one)."""
    return SECRET_PREFIX + secrets.token_hex(24)


def signature(secret: str, body: bytes, *, t: int) -> str:
    """The hex HMAC-SHA256 of ``"t.body"``."""
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, t: int | None = None) -> str:
    """The ``CRM-Signature`` header value for ``body`` sent at unix time ``t`` (now by default)."""
    t = int(time.time()) if t is None else t
    return f"t={t},v1={signature(secret, body, t=t)}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: int = DEFAULT_TOLERANCE_S,
           now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` and its timestamp is within ``tolerance_s`` of now."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = signature(secret, body, t=t)
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))
