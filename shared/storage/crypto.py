"""Encryption at rest: per-customer data keys wrapped by the master key, and crypto-shredding.

Every personal field a store keeps (phone, name, birthday, e-mail, free text, raw event payloads) is
sealed with AES-256-GCM under a data key of its own customer, with the customer and the field as
associated data, so a ciphertext copied to another customer or field does not open. Data keys are
random, wrapped by the master key (``CRM_MASTER_KEY``) and kept in the service's keyring, beside its
data but apart from it (SQLite: ``crm.<service>.keys.db`` next to ``crm.<service>.db``; MongoDB: the
database ``<db>_<service>_keys``), so a backup of the data holds no key. ``shred(customer)`` deletes the
wrapped key: every copy of that customer's sealed fields, backups of the data included, can no longer
be opened by anyone.

Values kept before there is a customer (dead letters of events that cannot be read, outbox rows) are
sealed under the service's own key (customer ``SERVICE``), which is never shredded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.privacy import Pseudonymizer

# Sealed text starts with this tag: text without it was written before encryption (read as it is).
PREFIX = "enc1:"
_PREFIX_BYTES = PREFIX.encode()
SERVICE = "_service"
_CHECK = "_check"
_CHECK_TEXT = b"crm master key check"
_NONCE = 12
# Ready ciphers kept for the customers used last (about 2.5 KB each, 10 MB in all); see ``KeyRing``.
_CIPHERS = 4096


# What stands in for CRM_MASTER_KEY in development when none is set (like the dev pseudonym key): it
# protects nothing, so `crm up` generates a real one into the data dir and prod requires one.
DEV_MASTER_KEY = b"crm-dev-only-master-key-32-bytes"


class MasterKeyError(ValueError):
    """The master key is missing, malformed, or not the one this store's data keys were wrapped with."""


class Unreadable(ValueError):
    """A sealed value that does not open: tampered, or moved to another customer or field."""


def parse_master_key(text: str) -> bytes:
    """The 32 bytes of a base64 ``CRM_MASTER_KEY``; MasterKeyError otherwise (never echoing the value)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise MasterKeyError("CRM_MASTER_KEY must be base64 of 32 random bytes") from None
    if len(raw) != 32:
        raise MasterKeyError(f"CRM_MASTER_KEY must be 32 bytes once decoded, not {len(raw)}")
    return raw


def new_master_key() -> str:
    """A fresh master key, base64 (what ``crm up`` writes to the data dir)."""
    return base64.b64encode(os.urandom(32)).decode()


class KeyBackend(Protocol):
    """Where wrapped data keys are kept: one row per customer, never updated, deleted to shred."""

    def get_many(self, customers: list[str]) -> dict[str, bytes]: ...
    def add(self, wrapped: dict[str, bytes]) -> None: ...
    def delete(self, customer: str) -> bool: ...


KEYS_SQL = """
CREATE TABLE IF NOT EXISTS data_keys (customer TEXT PRIMARY KEY, wrapped BLOB NOT NULL, created_ms INTEGER NOT NULL)
WITHOUT ROWID;
"""


class SqliteKeys:
    """Wrapped data keys in the keyring's SQLite file (table ``data_keys``); each write commits at once."""

    def __init__(self, db) -> None:
        self.db = db

    def get_many(self, customers: list[str]) -> dict[str, bytes]:
        """The wrapped keys held for these customers."""
        out: dict[str, bytes] = {}
        c = self.db.conn()
        for start in range(0, len(customers), 500):
            chunk = customers[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = c.execute(f"SELECT customer, wrapped FROM data_keys WHERE customer IN ({marks})", chunk)
            out.update((k, bytes(w)) for k, w in rows)
        return out

    def add(self, wrapped: dict[str, bytes]) -> None:
        """Keep new wrapped keys (one statement, one transaction); a key another worker added first wins."""
        now = int(time.time() * 1000)
        # The connection autocommits: without a transaction around it, each row was a WAL commit of its own,
        # which cost a batch of new members more than making, wrapping and reading back their keys (issue 14).
        with self.db.transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO data_keys VALUES (?,?,?)",
                             [(c, w, now) for c, w in wrapped.items()])

    def delete(self, customer: str) -> bool:
        """Forget a customer's key; True when there was one."""
        return self.db.conn().execute("DELETE FROM data_keys WHERE customer = ?", (customer,)).rowcount == 1


class MongoKeys:
    """Wrapped data keys in the keyring's MongoDB database (collection ``data_keys``), outside any transaction."""

    def __init__(self, mdb) -> None:
        self.mdb = mdb

    def get_many(self, customers: list[str]) -> dict[str, bytes]:
        """The wrapped keys held for these customers."""
        return {d["_id"]: bytes(d["wrapped"]) for d in self.mdb["data_keys"].find({"_id": {"$in": customers}})}

    def add(self, wrapped: dict[str, bytes]) -> None:
        """Keep new wrapped keys (one round trip); a key another worker added first wins."""
        from pymongo import UpdateMany

        now = int(time.time() * 1000)
        self.mdb["data_keys"].bulk_write([
            UpdateMany({"_id": c}, {"$setOnInsert": {"wrapped": w, "created_ms": now}}, upsert=True)
            for c, w in wrapped.items()], ordered=False)

    def delete(self, customer: str) -> bool:
        """Forget a customer's key; True when there was one."""
        return self.mdb["data_keys"].delete_one({"_id": customer}).deleted_count == 1


class KeyRing:
    """Seals and opens personal fields under per-customer data keys; ``shred`` makes a customer unreadable."""

    def __init__(self, master: bytes, backend: KeyBackend, *, cache_size: int = 100_000, cache_s: float = 30.0) -> None:
        if len(master) != 32:
            raise MasterKeyError("the master key must be 32 bytes")
        self._master = AESGCM(master)
        self._backend = backend
        # Unwrapped keys, for a short while: a shred in another process takes effect here within cache_s.
        # The raw 32 bytes are kept, about 250 bytes an entry (25 MB at the default 100,000): an AESGCM
        # object holds some 2.5 KB of cipher state outside Python's heap, and keeping one per customer
        # took a service 250 MB of RSS over 100,000 customers (issue 13). Ciphers are kept only for the
        # last ``_CIPHERS`` customers used, which a batch's fields of one customer reuse.
        self._cache: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._cache_size, self._cache_s = cache_size, cache_s
        self._ciphers: OrderedDict[str, tuple[bytes, AESGCM]] = OrderedDict()
        self._lock = threading.Lock()
        self._checked = False
        # Lookups never decrypt: a sealed identifier is found by its keyed pseudonym (a blind index) under a
        # key derived from the master key, so the index means nothing without it.
        self._index = Pseudonymizer(hmac.new(master, b"crm lookup index v1", hashlib.sha256).digest())

    # -- keys ---------------------------------------------------------------------------
    def _wrap(self, customer: str, key: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._master.encrypt(nonce, key, b"key\x1f" + customer.encode())

    def _unwrap(self, customer: str, wrapped: bytes) -> bytes:
        try:
            return self._master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], b"key\x1f" + customer.encode())
        except InvalidTag:
            raise MasterKeyError("CRM_MASTER_KEY does not open this store's data keys (wrong master key?)") from None

    def check(self) -> None:
        """Fail now, with MasterKeyError, when the master key is not the one this keyring's keys were wrapped
        with (stores call it when they open, so a wrong key stops a service at start, not at its first read)."""
        self._check_master()

    def _check_master(self) -> None:
        # A check value wrapped once: a wrong master key fails here, clearly, before anything is sealed with it.
        held = self._backend.get_many([_CHECK]).get(_CHECK)
        if held is None:
            self._backend.add({_CHECK: self._wrap(_CHECK, _CHECK_TEXT)})
            held = self._backend.get_many([_CHECK])[_CHECK]
        self._unwrap(_CHECK, held)
        self._checked = True

    def _keys(self, customers: Iterable[str], *, create: bool) -> dict[str, bytes]:
        if not self._checked:
            self._check_master()
        now = time.monotonic()
        out: dict[str, bytes] = {}
        missing: list[str] = []
        with self._lock:
            for c in customers:
                hit = self._cache.get(c)
                if hit is not None and hit[0] > now:
                    out[c] = hit[1]
                elif c not in out:
                    missing.append(c)
        if not missing:
            return out
        held = self._backend.get_many(missing)
        absent = [c for c in missing if c not in held]
        if create and absent:
            self._backend.add({c: self._wrap(c, AESGCM.generate_key(bit_length=256)) for c in absent})
            held.update(self._backend.get_many(absent))  # the winner's key when two workers raced
        with self._lock:
            for c in missing:
                if c in held:
                    out[c] = self._unwrap(c, held[c])
                    self._cache[c] = (now + self._cache_s, out[c])
                    self._cache.move_to_end(c)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out

    def _cipher(self, customer: str, key: bytes) -> AESGCM:
        # A customer's new key (after a shred) gets a new cipher.
        with self._lock:
            hit = self._ciphers.get(customer)
            if hit is not None and hit[0] == key:
                self._ciphers.move_to_end(customer)
                return hit[1]
            cipher = AESGCM(key)
            self._ciphers[customer] = (key, cipher)
            while len(self._ciphers) > _CIPHERS:
                self._ciphers.popitem(last=False)
            return cipher

    def prepare(self, customers: Iterable[str]) -> None:
        """Create (or load) the data keys of these customers in one round trip, before sealing a batch."""
        self._keys(set(customers), create=True)

    def index(self, kind: str, value: str) -> str:
        """The keyed pseudonym an identifier is looked up by (stable per master key; not reversible)."""
        return self._index(kind, value, length=32)

    def load(self, customers: Iterable[str]) -> None:
        """Load the data keys these customers have in one round trip, before opening many of their values."""
        self._keys(set(customers), create=False)

    def shred(self, customer: str) -> bool:
        """Delete a customer's data key: every sealed copy of their fields becomes unreadable for good."""
        with self._lock:
            self._cache.pop(customer, None)
            self._ciphers.pop(customer, None)
        return self._backend.delete(customer)

    def close(self) -> None:
        """Close this thread's connection to the keyring (SQLite)."""
        db = getattr(self._backend, "db", None)
        if db is not None and hasattr(db, "close"):
            db.close()

    # -- fields -------------------------------------------------------------------------
    def seal(self, customer: str, field: str, plaintext: str | None) -> str | None:
        """``plaintext`` sealed under the customer's key and bound to ``(customer, field)``; None stays None."""
        if plaintext is None:
            return None
        return self._sealed(customer, field, plaintext.encode()).decode()

    def _sealed(self, customer: str, field: str, data: bytes) -> bytes:
        key = self._sealing_cipher(customer)
        nonce = os.urandom(_NONCE)
        return _PREFIX_BYTES + base64.b64encode(nonce + key.encrypt(nonce, data, _aad(customer, field)))

    def _sealing_cipher(self, customer: str) -> AESGCM:
        # Identity seals several values per event (its payload, its outbox message, identifiers): a customer whose
        # key is cached and fresh, with its cipher made, is served under one lock, not through ``_keys`` and
        # ``_cipher`` (each its own lock and bookkeeping), which cost more than the encryption of a small value.
        if self._checked:
            now = time.monotonic()
            with self._lock:
                hit = self._cache.get(customer)
                if hit is not None and hit[0] > now:
                    made = self._ciphers.get(customer)
                    if made is not None and made[0] == hit[1]:
                        self._ciphers.move_to_end(customer)
                        return made[1]
        return self._cipher(customer, self._keys((customer,), create=True)[customer])

    def open(self, customer: str, field: str, token: str | None) -> str | None:
        """The plaintext of a sealed value; None when the customer's key was shredded (or the value is None).

        Raises Unreadable when the value was tampered with or belongs to another customer or field.
        """
        if token is None:
            return None
        if not token.startswith(PREFIX):
            return token  # written before encryption at rest
        raw_key = self._keys((customer,), create=False).get(customer)
        if raw_key is None:
            return None
        key = self._cipher(customer, raw_key)
        raw = base64.b64decode(token[len(PREFIX):])
        try:
            return key.decrypt(raw[:_NONCE], raw[_NONCE:], _aad(customer, field)).decode()
        except InvalidTag:
            raise Unreadable(f"sealed {field} does not open for this customer") from None

    def seal_bytes(self, customer: str, field: str, plaintext: bytes) -> bytes:
        """Bytes sealed like ``seal`` (outbox and dead-letter values)."""
        # What ``seal`` makes of the plaintext's base64, without the text round trips.
        return self._sealed(customer, field, base64.b64encode(plaintext))

    def open_bytes(self, customer: str, field: str, token: bytes) -> bytes | None:
        """The bytes ``seal_bytes`` sealed; bytes written before encryption are returned as they are."""
        if not token.startswith(PREFIX.encode()):
            return token
        text = self.open(customer, field, token.decode())
        return None if text is None else base64.b64decode(text)


def _aad(customer: str, field: str) -> bytes:
    return f"{customer}\x1f{field}".encode()


def keyring_path(data_path: Path) -> Path:
    """The keyring file beside a service's SQLite file (``crm.identity.db`` -> ``crm.identity.keys.db``)."""
    return data_path.with_name(f"{data_path.stem}.keys{data_path.suffix or '.db'}")


def sqlite_keyring(data_path: Path, master: bytes) -> KeyRing:
    """The keyring of the service whose data is in this SQLite file."""
    from shared.storage.base import SqliteDb

    return KeyRing(master, SqliteKeys(SqliteDb(keyring_path(data_path), KEYS_SQL)))


def mongo_keyring(mdb, master: bytes) -> KeyRing:
    """The keyring of the service whose data is in this MongoDB database (``<its name>_keys``)."""
    from shared.storage.base import MongoDb

    return KeyRing(master, MongoKeys(MongoDb(mdb.client[f"{mdb.database.name}_keys"], transactions=False)))


def is_sealed(value: object) -> bool:
    """Whether a stored value is sealed."""
    if isinstance(value, str):
        return value.startswith(PREFIX)
    return isinstance(value, bytes) and value.startswith(PREFIX.encode())
