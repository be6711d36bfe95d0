"""API keys (issue 12): the KEY:ROLE[@scope] format, errors that name the entry and never the key, hashed
keys with salted display names, and a key file that takes effect without a restart."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from pydantic import ValidationError

from shared.access.keys import KeyEntry, Keyring, KeySource, key_name, parse_keys
from shared.access.scope import COMPANY, Scope
from shared.settings import Settings

NAME_KEY = b"n" * 32


def test_entries_name_a_role_and_optionally_a_store_or_a_region():
    text = "k-all:admin, k-sh:reader@store=SH-001,\nk-east:operator@region=east,k:with:colons:reader"
    assert parse_keys(text, source="CRM_API_KEYS") == [
        KeyEntry("k-all", "admin", COMPANY),
        KeyEntry("k-sh", "reader", Scope("store", "SH-001")),
        KeyEntry("k-east", "operator", Scope("region", "east")),
        KeyEntry("k:with:colons", "reader", COMPANY),
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("good-key:admin,s3cret-one:root", "CRM_API_KEYS entry 2: unknown role; KEY:ROLE, KEY:ROLE@store=STORE_ID or "
                                       "KEY:ROLE@region=REGION, ROLE one of reader/operator/admin"),
    ("good-key:admin,s3cret-one", "CRM_API_KEYS entry 2: entries look like KEY:ROLE, KEY:ROLE@store=STORE_ID or "
                                  "KEY:ROLE@region=REGION, ROLE one of reader/operator/admin"),
    ("s3cret-one:reader@shop=SH-001", "CRM_API_KEYS entry 1: scope looks like store=STORE_ID or region=REGION"),
    ("a:admin,b:reader,s3cret-one:reader@store=", "CRM_API_KEYS entry 3: scope looks like store=STORE_ID or "
                                                  "region=REGION"),
    ("s3cret-one:admin,s3cret-one:reader", "CRM_API_KEYS entry 2: the same key is listed twice"),
])
def test_a_bad_entry_is_refused_naming_its_position_never_the_key(text, message):
    with pytest.raises(ValueError) as caught:
        parse_keys(text, source="CRM_API_KEYS")
    assert str(caught.value) == message
    assert "s3cret" not in str(caught.value)


def test_settings_refuse_a_bad_key_entry_at_start_up_without_echoing_it():
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, api_keys="fine:admin,s3cret-one:superuser")
    assert "CRM_API_KEYS entry 2: unknown role" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_key_matches_its_caller_with_role_scope_and_a_salted_display_name():
    ring = Keyring(parse_keys("k-sh:reader@store=SH-001,k-all:admin", source="x"), name_key=NAME_KEY)
    caller = ring.match(b"k-sh")
    expected = "api-key-" + hmac.new(NAME_KEY, b"k-sh", hashlib.sha256).hexdigest()[:8]
    assert (caller.role, caller.scope, caller.name, caller.key_id) == ("reader", Scope("store", "SH-001"),
                                                                       expected, expected)
    assert ring.match(b"k-all").scope == COMPANY
    assert ring.match(b"k-s") is None and ring.match(b"k-shh") is None and ring.match(b"") is None
    # The old fingerprint, an unsalted hash, could be checked against guesses offline; the name cannot.
    assert hashlib.sha256(b"k-sh").hexdigest()[:8] not in caller.name
    assert key_name("k-sh", b"another platform secret") != caller.name


def test_the_key_source_holds_no_key_in_clear(tmp_path):
    file = tmp_path / "keys.txt"
    file.write_text("file-key-value:reader\n")
    source = KeySource("plain-key-value:admin", str(file), name_key=NAME_KEY)
    held = repr(vars(source)) + repr(vars(source.keyring())) + repr(vars(source._env))
    assert "plain-key-value" not in held and "file-key-value" not in held
    assert source.keyring().match(b"plain-key-value").role == "admin"


def _write(path, text: str) -> None:
    path.write_text(text)
    # Some file systems keep mtimes coarse; a later mtime makes the edit visible whatever the clock's grain.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_the_key_file_adds_to_the_environment_keys_and_its_edits_take_effect_at_once(tmp_path):
    file = tmp_path / "keys.txt"
    _write(file, "# store staff\nk-file:reader@store=SH-001\n")
    source = KeySource("k-env:admin", str(file), name_key=NAME_KEY)
    assert source.keyring().match(b"k-env").role == "admin"
    assert source.keyring().match(b"k-file").scope == Scope("store", "SH-001")

    _write(file, "k-new:operator@region=east\n")
    assert source.keyring().match(b"k-file") is None
    assert source.keyring().match(b"k-new").scope == Scope("region", "east")
    assert source.keyring().match(b"k-env").role == "admin"

    _write(file, "k-new:operator@region=east\nbroken-entry\n")  # a bad edit: the last good keys stay
    assert source.keyring().match(b"k-new").role == "operator"

    file.unlink()
    assert source.keyring().match(b"k-new") is None
    assert source.keyring().match(b"k-env").role == "admin"


def test_a_bad_key_file_at_start_up_is_an_error_naming_the_file_and_entry(tmp_path):
    file = tmp_path / "keys.txt"
    file.write_text("ok:admin\ns3cret:boss\n")
    with pytest.raises(ValueError) as caught:
        KeySource("", str(file), name_key=NAME_KEY)
    assert str(caught.value).startswith("CRM_API_KEYS_FILE entry 2: unknown role")
    assert "s3cret" not in str(caught.value)
