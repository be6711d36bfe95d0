"""API keys: the ``KEY:ROLE[@store=ID|@region=NAME]`` entries, held only as salted hashes, re-read when the key
file changes.

A key is never kept in clear once parsed: the keyring holds an HMAC-SHA256 of each key under a random key of this
process, and a presented key is hashed the same way and compared with every entry in constant time (no early exit,
so timing says nothing about which entry matched). A key's display name (``api-key-`` and 8 hex digits) is an
HMAC under a key derived from the platform's pseudonym secret: the same in every service, and useless for guessing
the key offline without that secret (the old unsalted ``sha256(key)[:10]`` was not).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.access.principals import Caller
from shared.access.reloading import Reloading
from shared.access.scope import COMPANY, Scope
from shared.settings import ROLES, Role

_ENTRY = re.compile(r"^(?P<key>.+):(?P<role>[a-z]+)(?:@(?P<kind>[a-z]+)=(?P<value>.*))?$", re.DOTALL)
_SCOPE_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
log = logging.getLogger(__name__)
KEY_NAME_PREFIX = "api-key-"  # what a key's display name starts with (no staff account may: shared/access/staff.py)
FORMAT = "KEY:ROLE, KEY:ROLE@store=STORE_ID or KEY:ROLE@region=REGION, ROLE one of reader/operator/admin"


@dataclass(frozen=True)
class KeyEntry:
    """One parsed entry: the key (only until it is hashed), its role and scope."""

    key: str
    role: Role
    scope: Scope = COMPANY


def parse_scope(text: str, *, where: str) -> Scope:
    """``company``, ``store=ID`` or ``region=NAME`` as a Scope; ``ValueError`` naming ``where`` otherwise."""
    text = text.strip()
    if text in ("", "company"):
        return COMPANY
    kind, _, value = text.partition("=")
    if kind not in ("store", "region") or not _SCOPE_VALUE.match(value):
        raise ValueError(f"{where}: scope looks like store=STORE_ID or region=REGION")
    return Scope(kind, value)  # type: ignore[arg-type]


def parse_keys(text: str, *, source: str) -> list[KeyEntry]:
    """Entries separated by commas or new lines (``#`` starts a comment line); errors name the entry's position,
    never the key."""
    entries, errors = parse_keys_leniently(text, source=source)
    if errors:
        raise ValueError(errors[0])
    return entries


def parse_keys_leniently(text: str, *, source: str) -> tuple[list[KeyEntry], list[str]]:
    """The entries that read well, and an error for each that does not (its position, never the key); a key
    listed twice is an error, and neither of its entries is kept."""
    entries: list[tuple[int, KeyEntry]] = []
    errors: list[str] = []
    parts = [p.strip() for line in text.splitlines() if not line.strip().startswith("#") for p in line.split(",")]
    for position, part in enumerate(filter(None, parts), start=1):
        where = f"{source} entry {position}"
        m = _ENTRY.match(part)
        try:
            if m is None or not m["key"].strip():
                raise ValueError(f"{where}: entries look like {FORMAT}")
            if m["role"] not in ROLES:
                raise ValueError(f"{where}: unknown role; {FORMAT}")
            scope = COMPANY if m["kind"] is None else parse_scope(f"{m['kind']}={m['value']}", where=where)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        entries.append((position, KeyEntry(m["key"].strip(), m["role"], scope)))  # type: ignore[arg-type]
    seen: dict[str, int] = {}
    for position, e in entries:
        if e.key in seen:
            errors.append(f"{source} entry {position}: the same key is listed twice")
        seen[e.key] = seen.get(e.key, 0) + 1
    return [e for _, e in entries if seen[e.key] == 1], errors


def key_name(key: str, name_key: bytes) -> str:
    """A key's display name: not secret, stable across the platform's processes, no help in guessing the key."""
    return KEY_NAME_PREFIX + hmac.new(name_key, key.encode(), hashlib.sha256).hexdigest()[:8]


class Keyring:
    """The known keys, hashed under this process's own random key, with their callers."""

    def __init__(self, entries: list[KeyEntry], *, name_key: bytes, salt: bytes | None = None) -> None:
        self._salt = salt or secrets.token_bytes(32)
        self._name_key = name_key
        names = [key_name(e.key, name_key) for e in entries]
        self._entries = {self._digest(e.key.encode()): Caller(n, e.role, e.scope, name=n)
                         for e, n in zip(entries, names, strict=True)}

    def _digest(self, key: bytes) -> bytes:
        return hmac.new(self._salt, key, hashlib.sha256).digest()

    def __len__(self) -> int:
        return len(self._entries)

    def plus(self, entries: list[KeyEntry]) -> Keyring:
        """This keyring with ``entries`` added; an entry for a key already held replaces it."""
        more = Keyring(entries, name_key=self._name_key, salt=self._salt)
        more._entries = {**self._entries, **more._entries}
        return more

    def still_listed(self, entries: list[KeyEntry], *, base: Keyring) -> Keyring:
        """``base`` (same salt) plus those of this keyring's entries that ``entries`` list again with the same
        role and scope, compared by key hash: what a broken key file leaves in force (nothing is added)."""
        listed = {(self._digest(e.key.encode()), e.role, e.scope) for e in entries}
        kept = Keyring([], name_key=self._name_key, salt=self._salt)
        kept._entries = {**base._entries, **{digest: caller for digest, caller in self._entries.items()
                                             if (digest, caller.role, caller.scope) in listed}}
        return kept

    def match(self, presented: bytes) -> Caller | None:
        """The caller of a presented key, or None; every entry is compared, whatever matches."""
        digest = self._digest(presented)
        found = None
        for known, caller in self._entries.items():
            if hmac.compare_digest(known, digest):
                found = caller
        return found


class KeySource:
    """The keyring of ``CRM_API_KEYS`` plus ``CRM_API_KEYS_FILE``, rebuilt when the file changes (size or mtime).

    Only hashes are kept: the environment's keys as a keyring, the file's re-read and hashed on each change."""

    def __init__(self, env_text: str, file: str, *, name_key: bytes) -> None:
        self._env = Keyring(parse_keys(env_text, source="CRM_API_KEYS"), name_key=name_key)
        self._file = Reloading(Path(file), self._with_file, initial=self._env, what="key file",
                               describe=_describe, salvage=self._still_listed) if file else None
        if self._file is not None:
            try:
                self._file.reload()
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise ValueError(_describe(exc)) from None

    def keyring(self) -> Keyring:
        """The current keyring; a stat of the key file per call picks up edits without a restart."""
        return self._env if self._file is None else self._file.current()

    def _still_listed(self, text: str | None, last: Keyring) -> Keyring:
        # Fail closed: of the last good keys only those the broken file still lists (same role and scope) stay,
        # so a removed key is out at once; the environment's keys stay; nothing new is let in until it is fixed.
        entries, errors = parse_keys_leniently(text or "", source="CRM_API_KEYS_FILE")
        _still_listed_log(errors)
        return last.still_listed(entries, base=self._env)

    def _with_file(self, text: str | None) -> Keyring:
        # A key in both places: the file's entry wins (it is the one that changes without a restart).
        return self._env.plus(parse_keys(text or "", source="CRM_API_KEYS_FILE"))


def _still_listed_log(errors: list[str]) -> None:
    for error in errors:  # positions and reasons only, never an entry's text
        log.error("key file entry not used: %s", error)


def _describe(exc: Exception) -> str:
    # Never the file's text: a parse error names the entry's position, a read error only its kind.
    return str(exc) if isinstance(exc, ValueError) else f"CRM_API_KEYS_FILE cannot be read: {type(exc).__name__}"
