"""Search by name (issue 16): the blind index a customer's name is found by while the name itself stays sealed.

A name is kept sealed under its customer's data key, so no query can compare it. Beside it identity keeps a
keyed HMAC-SHA256 of the name's normal form (``CRM_IDENTITY_NAME_INDEX_KEY``, a key of its own: neither the
master key nor the pseudonym key), which a search computes from the name typed and looks up. Without the key
the index says nothing about whose name it is; with it, only whether two names are the same.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

# What stands in for CRM_IDENTITY_NAME_INDEX_KEY in development when none is set (prod refuses to start).
DEV_NAME_INDEX_KEY = b"crm-dev-only-name-index-key-32-bytes"


def normal_name(name: str) -> str:
    """A name as it is compared: Unicode NFKC (full-width letters and digits become half-width), case folded,
    every whitespace removed (张 三, 张三 and ＺＨＡＮＧ　San all compare as written without spaces)."""
    # NFKC again after casefold: folding can leave a compatibility form (as Unicode's NFKC_Casefold does).
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return "".join(folded.split())


class NameIndex:
    """Turns a name into the key it is found by (hex HMAC-SHA256 of its normal form)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the name index key must be at least 32 bytes")
        self._key = key

    def digest(self, name: object) -> str | None:
        """The index entry of a profile's name; None for no name (null, not text, or only spaces)."""
        if not isinstance(name, str):
            return None
        text = normal_name(name)
        if not text:
            return None
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def fingerprint(self) -> str:
        """Which key built an index (a changed key rebuilds it); says nothing of the key itself."""
        return hmac.new(self._key, b"crm name index fingerprint", hashlib.sha256).hexdigest()[:16]
