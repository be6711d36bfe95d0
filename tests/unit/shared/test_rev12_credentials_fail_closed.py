"""Review of issue 12, D6 and the staff file: credentials fail closed.

An edit of the key file or the staff file that removes a key or an account (or changes its role, scope or
password) takes effect even when another line of the same edit is broken: of the last good set only what the
broken file still lists, the same, stays in force; nothing new is let in until the file is fixed; the log
names the lines that failed, never their text. A staff row without a scope is an error (company scope is
written out), and a staff user may not be named like an API key (``api-key-…``)."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path

import pytest

from shared.access.keys import KeySource
from shared.access.scope import COMPANY, Scope
from shared.access.staff import StaffDirectory, hash_password, parse_staff

NAME_KEY = b"n" * 32
PASSWORD, NEW_PASSWORD = "correct horse battery staple", "another long pass phrase"
_MTIME = [1_000_000_000]


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    _MTIME[0] += 1_000_000_000  # a distinct mtime per edit, however fast the edits come
    os.utime(path, ns=(_MTIME[0], _MTIME[0]))


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_key_removed_in_a_broken_edit_is_out_at_once_and_nothing_new_comes_in(tmp_path, caplog):
    file = tmp_path / "keys.txt"
    _write(file, "k-stay:reader@store=SH-001\nk-gone:admin\nk-demoted:admin\nk-env:reader\n")
    source = KeySource("k-env:admin", str(file), name_key=NAME_KEY)
    assert [source.keyring().match(k).role for k in (b"k-stay", b"k-gone", b"k-demoted", b"k-env")] == [
        "reader", "admin", "admin", "reader"]  # the file's entry wins over the environment's

    with caplog.at_level(logging.ERROR):
        _write(file, "k-stay:reader@store=SH-001\nk-demoted:reader\nk-secret-new:admin\nk-broken-1:root\n"
                     "k-broken-2:reader@shop=1\n")
        keyring = source.keyring()
    assert keyring.match(b"k-stay").scope == Scope("store", "SH-001")
    assert keyring.match(b"k-gone") is None  # removed: out although the edit is broken
    assert keyring.match(b"k-demoted") is None  # changed: out until the file is fixed (never the higher role)
    assert keyring.match(b"k-secret-new") is None  # new: not in until the file is fixed
    assert keyring.match(b"k-env").role == "admin"  # the environment's own entry is back
    logged = _errors(caplog)
    assert logged[:2] == ["key file entry not used: CRM_API_KEYS_FILE entry 4: unknown role; KEY:ROLE, KEY:ROLE@"
                          "store=STORE_ID or KEY:ROLE@region=REGION, ROLE one of reader/operator/admin",
                          "key file entry not used: CRM_API_KEYS_FILE entry 5: scope looks like store=STORE_ID or "
                          "region=REGION"]
    assert not any(k in line for line in logged for k in ("k-stay", "k-broken", "k-secret", "k-demoted"))

    _write(file, "k-stay:reader@store=SH-001\nk-demoted:reader\nk-secret-new:admin\n")  # fixed
    assert (source.keyring().match(b"k-demoted").role, source.keyring().match(b"k-secret-new").role) == (
        "reader", "admin")


def _staff_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=("user", "password_hash", "role", "scope", "display_name"),
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_a_staff_account_removed_or_given_a_new_password_in_a_broken_edit_no_longer_signs_in(tmp_path, caplog):
    file = tmp_path / "staff.csv"
    old_hash, new_hash = hash_password(PASSWORD), hash_password(NEW_PASSWORD)
    rows = {u: {"user": u, "password_hash": old_hash, "role": "operator", "scope": "store=SH-001",
                "display_name": ""} for u in ("stays", "removed", "repassworded")}
    _write(file, _staff_csv(list(rows.values())))
    directory = StaffDirectory(str(file))
    assert all(directory.sign_in(u, PASSWORD) is not None for u in rows)

    with caplog.at_level(logging.ERROR):
        _write(file, _staff_csv([rows["stays"], {**rows["repassworded"], "password_hash": new_hash},
                                 {**rows["stays"], "user": "newcomer"},
                                 {"user": "broken", "password_hash": old_hash, "role": "root", "scope": "company"}]))
        assert directory.sign_in("stays", PASSWORD).scope == Scope("store", "SH-001")
    assert directory.sign_in("removed", PASSWORD) is None
    assert directory.sign_in("repassworded", PASSWORD) is None and directory.sign_in("repassworded",
                                                                                      NEW_PASSWORD) is None
    assert directory.sign_in("newcomer", PASSWORD) is None
    assert "staff file row not used: CRM_STAFF_FILE row 4: field role: one of reader/operator/admin" in _errors(
        caplog)

    _write(file, "this is { not a staff file")  # nothing readable at all: nobody signs in until it is fixed
    assert directory.sign_in("stays", PASSWORD) is None
    _write(file, _staff_csv([rows["stays"]]))
    assert directory.sign_in("stays", PASSWORD) is not None


@pytest.mark.parametrize("row", [
    {"user": "ab", "password_hash": "$argon2id$x", "role": "admin"},
    {"user": "ab", "password_hash": "$argon2id$x", "role": "admin", "scope": ""},
    {"user": "ab", "password_hash": "$argon2id$x", "role": "admin", "scope": "   "},
    {"user": "ab", "password_hash": "$argon2id$x", "role": "admin", "scope": None},
])
def test_a_staff_row_without_a_scope_is_an_error_not_company_wide(row):
    with pytest.raises(ValueError) as caught:
        parse_staff(json.dumps([row]), kind="json")
    assert str(caught.value) == ("CRM_STAFF_FILE row 1: field scope: company, store=STORE_ID or region=REGION "
                                 "(company is written out)")
    assert parse_staff(json.dumps([{**row, "scope": "company"}]), kind="json")["ab"].scope == COMPANY


def test_a_csv_staff_file_without_a_scope_column_is_refused_naming_the_row():
    text = "user,password_hash,role\nab,$argon2id$x,admin\n"
    with pytest.raises(ValueError, match=r"^CRM_STAFF_FILE row 1: field scope: "):
        parse_staff(text, kind="csv")


@pytest.mark.parametrize("user", ["api-key-1a2b3c4d", "API-KEY-deadbeef", "api-key-"])
def test_a_staff_user_named_like_an_api_key_is_refused(user):
    row = {"user": user, "password_hash": "$argon2id$x", "role": "reader", "scope": "company"}
    with pytest.raises(ValueError) as caught:
        parse_staff(json.dumps([row]), kind="json")
    assert str(caught.value) == ("CRM_STAFF_FILE row 1: field user: must not start with api-key- "
                                 "(API keys are shown so)")
