"""Staff accounts (issue 12): argon2id hashes written by `crm staff add`, a staff file re-read when it changes,
sign-in that treats a wrong password and an unknown user alike, and tokens that say who, with what role."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from crm.cli import app
from shared.access.scope import COMPANY, Scope
from shared.access.staff import StaffAccount, StaffDirectory, add_account, hash_password, parse_staff
from shared.access.tokens import Tokens
from shared.http.errors import Unauthorized
from shared.settings import Settings

PASSWORD = "correct horse battery staple"


def test_crm_staff_add_writes_an_argon2id_hash_role_and_scope_never_the_password(tmp_path):
    file = tmp_path / "staff.json"
    r = CliRunner().invoke(app, ["staff", "add", "li.wei", "--role", "reader", "--store", "SH-001", "--name",
                                 "Li Wei", "--password-stdin", "--file", str(file)], input=PASSWORD + "\n")
    assert (r.exit_code, r.output) == (0, f"added li.wei (reader) in {file}\n")
    text = file.read_text()
    [row] = json.loads(text)["users"]
    assert (row["user"], row["role"], row["scope"], row["display_name"]) == ("li.wei", "reader", "store=SH-001",
                                                                             "Li Wei")
    assert row["password_hash"].startswith("$argon2id$") and PASSWORD not in text
    assert oct(file.stat().st_mode & 0o777) == "0o600"
    caller = StaffDirectory(str(file)).sign_in("li.wei", PASSWORD)
    assert (caller.role, caller.scope, caller.name, caller.key_id) == ("reader", Scope("store", "SH-001"),
                                                                       "li.wei", "staff:li.wei")

    r = CliRunner().invoke(app, ["staff", "add", "li.wei", "--role", "operator", "--region", "east",
                                 "--password-stdin", "--file", str(file)], input="another long password\n")
    assert (r.exit_code, r.output) == (0, f"updated li.wei (operator) in {file}\n")
    directory = StaffDirectory(str(file))
    assert directory.sign_in("li.wei", PASSWORD) is None
    assert directory.sign_in("li.wei", "another long password").scope == Scope("region", "east")


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "boss"], "error: --role is one of reader/operator/admin\n"),
    (["--store", "S1", "--region", "east"], "error: give --store or --region, not both\n"),
    (["--store", "S 1"], "error: scope: scope looks like store=STORE_ID or region=REGION\n"),
])
def test_crm_staff_add_refuses_bad_input(tmp_path, args, message):
    r = CliRunner().invoke(app, ["staff", "add", "li.wei", *args, "--password-stdin", "--file",
                                 str(tmp_path / "s.json")], input=PASSWORD + "\n")
    assert (r.exit_code, r.stderr) == (2, message)
    assert not (tmp_path / "s.json").exists()


def test_a_short_password_is_refused(tmp_path):
    r = CliRunner().invoke(app, ["staff", "add", "li.wei", "--password-stdin", "--file", str(tmp_path / "s.csv")],
                           input="short\n")
    assert (r.exit_code, r.stderr) == (2, "error: the password needs at least 12 characters\n")


def test_a_csv_staff_file_works_like_json_and_is_re_read_when_it_changes(tmp_path):
    file = tmp_path / "staff.csv"
    add_account(file, StaffAccount("ops.zhang", hash_password(PASSWORD), "operator"))
    assert file.read_text().splitlines()[0] == "user,password_hash,role,scope,display_name"
    directory = StaffDirectory(str(file))
    assert directory.sign_in("ops.zhang", PASSWORD).scope == COMPANY
    add_account(file, StaffAccount("li.wei", hash_password(PASSWORD), "reader", Scope("store", "SH-001")))
    st = file.stat()
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert directory.sign_in("li.wei", PASSWORD).scope == Scope("store", "SH-001")


def test_a_missing_staff_file_is_read_once_it_appears(tmp_path):
    file = tmp_path / "staff.json"
    directory = StaffDirectory(str(file))
    assert directory.sign_in("li.wei", PASSWORD) is None
    add_account(file, StaffAccount("li.wei", hash_password(PASSWORD), "reader"))
    assert directory.sign_in("li.wei", PASSWORD).name == "li.wei"


@pytest.mark.parametrize(("row", "message"), [
    ({"user": "a b", "password_hash": "$argon2id$x", "role": "reader"}, "CRM_STAFF_FILE row 1: field user: "
                                                                          "1-64 letters, digits or . _ @ -"),
    ({"user": "ab", "password_hash": "plain", "role": "reader"}, "CRM_STAFF_FILE row 1: field password_hash: an "
                                                                 "argon2id hash (write it with `crm staff add`)"),
    ({"user": "ab", "password_hash": "$argon2id$x", "role": "root"}, "CRM_STAFF_FILE row 1: field role: one of "
                                                                     "reader/operator/admin"),
    ({"user": "ab", "password_hash": "$argon2id$x", "role": "reader", "scope": "shop=1"},
     "CRM_STAFF_FILE row 1: field scope: scope looks like store=STORE_ID or region=REGION"),
])
def test_a_bad_staff_file_is_refused_naming_row_and_field(row, message):
    with pytest.raises(ValueError) as caught:
        parse_staff(json.dumps([row]), kind="json")
    assert str(caught.value) == message


def test_an_unknown_user_costs_a_password_check_too(tmp_path, monkeypatch):
    file = tmp_path / "staff.json"
    add_account(file, StaffAccount("li.wei", hash_password(PASSWORD), "reader"))
    checked: list[str] = []
    real = StaffDirectory._dummy_hash

    def counting(self) -> str:
        checked.append("dummy")
        return real(self)

    monkeypatch.setattr(StaffDirectory, "_dummy_hash", counting)
    directory = StaffDirectory(str(file))
    assert directory.sign_in("li.wei", "a wrong password") is None
    assert checked == ["dummy"]  # made when the directory opens
    assert directory.sign_in("nobody", PASSWORD) is None
    assert checked == ["dummy", "dummy"]


def test_tokens_carry_role_scope_and_name_and_expire():
    now = [1_000_000.0]
    tokens = Tokens(b"k" * 32, ttl_s=900, clock=lambda: now[0])
    account = StaffAccount("li.wei", "$argon2id$x", "reader", Scope("region", "east"))
    token = tokens.issue(account.caller())
    caller = tokens.verify(token)
    assert (caller.key_id, caller.role, caller.scope, caller.name) == ("staff:li.wei", "reader",
                                                                       Scope("region", "east"), "li.wei")
    now[0] += 899
    assert tokens.verify(token).name == "li.wei"
    now[0] += 1
    with pytest.raises(Unauthorized) as caught:
        tokens.verify(token)
    assert caught.value.code == "token_expired"
    with pytest.raises(Unauthorized) as caught:
        Tokens(b"other" * 8, ttl_s=900, clock=lambda: 1_000_000.0).verify(token)
    assert caught.value.code == "invalid_token"


def test_prod_needs_a_token_secret_of_its_own_staff_file_or_not():
    # Every service accepts tokens: without a secret of its own, a token signed with the public
    # development key would pass as any role.
    base = {"_env_file": None, "env": "prod", "pseudonym_secret": "p" * 20, "api_keys": "k-prod-0001:admin",
            "master_key": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="}
    for secret in (None, "", "short"):
        with pytest.raises(ValueError, match="CRM_TOKEN_SECRET"):
            Settings(**base, token_secret=secret)
    assert Settings(**base, token_secret="t" * 32).token_key() == b"t" * 32


def test_a_token_checked_with_an_unusable_key_is_a_401_not_a_crash():
    token = Tokens(b"k" * 32, ttl_s=900, clock=lambda: 1_000_000.0).issue(
        StaffAccount("li.wei", "x", "reader").caller())
    with pytest.raises(Unauthorized) as err:
        Tokens(b"", ttl_s=900, clock=lambda: 1_000_000.0).verify(token)
    assert err.value.code == "invalid_token"
