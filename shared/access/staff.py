"""Staff accounts: user name, argon2id password hash, role, scope and display name in ``CRM_STAFF_FILE`` (JSON or
CSV), re-read when the file changes; sign-in checks a password in the same time whether the user exists or not."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.access.keys import KEY_NAME_PREFIX, parse_scope
from shared.access.principals import Caller
from shared.access.reloading import Reloading
from shared.access.scope import COMPANY, Scope
from shared.access.tokens import STAFF_PREFIX
from shared.settings import ROLES, Role

log = logging.getLogger(__name__)
FIELDS = ("user", "password_hash", "role", "scope", "display_name")
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# argon2id with argon2-cffi's defaults (RFC 9106 "low memory": 64 MiB, 3 passes, 4 lanes).
_HASHER = PasswordHasher()


@dataclass(frozen=True)
class StaffAccount:
    """One staff account as the file holds it."""

    user: str
    password_hash: str
    role: Role
    scope: Scope = COMPANY
    display_name: str = ""

    def caller(self) -> Caller:
        """The principal this account signs in as (its name is the user name)."""
        return Caller(STAFF_PREFIX + self.user, self.role, self.scope, name=self.user)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; the encoded form carries its parameters)."""
    return _HASHER.hash(password)


def parse_staff(text: str, *, kind: str) -> dict[str, StaffAccount]:
    """The accounts in a staff file's text (``kind``: ``json`` or ``csv``); errors name the row and field."""
    accounts, errors = parse_staff_leniently(text, kind=kind)
    if errors:
        raise ValueError(errors[0])
    return accounts


def parse_staff_leniently(text: str, *, kind: str) -> tuple[dict[str, StaffAccount], list[str]]:
    """The accounts of the rows that read well, and an error for each row that does not (row and field, never
    a value); a user listed twice is an error, and neither of its rows is kept. A file that is not JSON or CSV
    at all is one error and no account."""
    try:
        rows = _rows(text, kind)
    except ValueError as exc:
        return {}, [str(exc)]
    out: dict[str, StaffAccount] = {}
    errors: list[str] = []
    twice: set[str] = set()
    for number, row in rows:
        try:
            account = _account(row, where=f"CRM_STAFF_FILE row {number}")
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if account.user in out or account.user in twice:
            errors.append(f"CRM_STAFF_FILE row {number}: field user: listed twice")
            twice.add(account.user)
            out.pop(account.user, None)
            continue
        out[account.user] = account
    return out, errors


def _account(row: dict, *, where: str) -> StaffAccount:
    user = str(row.get("user") or "").strip()
    if not _USER.match(user):
        raise ValueError(f"{where}: field user: 1-64 letters, digits or . _ @ -")
    if user.lower().startswith(KEY_NAME_PREFIX):
        # The audit log and the views show an API key as api-key-…: an account named so would pass for one.
        raise ValueError(f"{where}: field user: must not start with {KEY_NAME_PREFIX} (API keys are shown so)")
    phash = str(row.get("password_hash") or "").strip()
    if not phash.startswith("$argon2id$"):
        raise ValueError(f"{where}: field password_hash: an argon2id hash (write it with `crm staff add`)")
    role = str(row.get("role") or "").strip()
    if role not in ROLES:
        raise ValueError(f"{where}: field role: one of reader/operator/admin")
    scope_text = str(row.get("scope") or "").strip()
    if not scope_text:
        # Fail closed: a forgotten scope must not make an account company-wide.
        raise ValueError(f"{where}: field scope: company, store=STORE_ID or region=REGION (company is written out)")
    scope = parse_scope(scope_text, where=f"{where}: field scope")
    return StaffAccount(user, phash, role, scope, str(row.get("display_name") or "").strip())  # type: ignore[arg-type]


def _still_listed(text: str | None, last: dict[str, StaffAccount], *, kind: str) -> dict[str, StaffAccount]:
    """Fail closed on a broken staff file: of the last good accounts only those a good row still lists with the
    same password hash, role and scope stay (a removed account, or one whose password changed, is out at once);
    nothing new is let in until the file is fixed. Which rows failed is logged (row and field only)."""
    listed, errors = parse_staff_leniently(text or "", kind=kind)
    for error in errors:
        log.error("staff file row not used: %s", error)
    return {user: account for user, account in last.items()
            if (now := listed.get(user)) is not None
            and (now.password_hash, now.role, now.scope) == (account.password_hash, account.role, account.scope)}


def _rows(text: str, kind: str) -> list[tuple[int, dict]]:
    if kind == "json":
        try:
            data = json.loads(text or "[]")
        except ValueError:
            raise ValueError("CRM_STAFF_FILE: not valid JSON") from None
        items = data.get("users") if isinstance(data, dict) else data
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValueError("CRM_STAFF_FILE: JSON is a list of objects (or {\"users\": [...]})")
        return list(enumerate(items, start=1))
    reader = csv.DictReader(io.StringIO(text))
    return list(enumerate(reader, start=1))


def _kind(path: Path) -> str:
    return "json" if path.suffix.lower() == ".json" else "csv"


class StaffDirectory:
    """The staff accounts of ``CRM_STAFF_FILE``, re-read when its size or mtime changes."""

    def __init__(self, path: str) -> None:
        file = Path(path) if path else None
        self._file = None if file is None else Reloading(
            file, lambda text: parse_staff(text or "", kind=_kind(file)), initial={}, what="staff file",
            salvage=lambda text, last: _still_listed(text, last, kind=_kind(file)))
        self._dummy: str | None = None
        if self._file is not None:
            self._dummy_hash()  # made now, so that even the first unknown user costs no more than one check
            self._file.reload()

    def accounts(self) -> dict[str, StaffAccount]:
        """The current accounts by user name."""
        return {} if self._file is None else self._file.current()

    def sign_in(self, user: str, password: str) -> Caller | None:
        """The caller for a right user name and password, else None; an unknown user costs a hash check too."""
        account = self.accounts().get(user)
        try:
            if account is None:
                # Same work as a wrong password, so timing does not tell which user names exist.
                _HASHER.verify(self._dummy_hash(), password)
                return None
            _HASHER.verify(account.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return account.caller()

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = hash_password("not anyone's password")
        return self._dummy


def add_account(path: Path, account: StaffAccount) -> bool:
    """Write ``account`` into the staff file (replacing one of the same user); True when it was new.

    The file is replaced whole (written beside it, then renamed) and readable by its owner only."""
    existing = parse_staff(path.read_text(encoding="utf-8"), kind=_kind(path)) if path.exists() else {}
    new = account.user not in existing
    existing[account.user] = account
    rows = [{"user": a.user, "password_hash": a.password_hash, "role": a.role,
             "scope": str(a.scope), "display_name": a.display_name} for a in existing.values()]
    if _kind(path) == "json":
        text = json.dumps({"users": rows}, ensure_ascii=False, indent=2) + "\n"
    else:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = out.getvalue()
    parse_staff(text, kind=_kind(path))  # never write a file the services would refuse
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".staff-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return new

