"""Issue 16: ``crm up`` prints the console's URL and, while no staff file exists, makes a development admin
with a random password that signs in (and prints the same one at the next start); never with staff configured."""

from __future__ import annotations

import os

from crm.platform import console_banner, dev_console_admin, dev_environment
from shared.access.staff import StaffDirectory
from shared.settings import Settings


def _dev(tmp_path, monkeypatch):
    for name in ("CRM_STAFF_FILE", "CRM_API_KEYS", "CRM_CONSOLE_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None, data_dir=str(tmp_path), api_keys="")
    return settings, dev_environment(settings)


def test_a_dev_admin_is_made_once_and_its_password_printed_at_every_start(tmp_path, monkeypatch):
    settings, env = _dev(tmp_path, monkeypatch)
    password = dev_console_admin(settings, env)
    assert password and len(password) >= 16
    assert console_banner(settings, env, password) == (
        f"  console    http://127.0.0.1:8000/   (sign in as admin / {password}, generated for development)")
    kept = tmp_path / "console-admin-password"
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    staff = StaffDirectory(str(tmp_path / "staff.json"))
    caller = staff.sign_in("admin", password)
    assert caller is not None and caller.role == "admin" and staff.sign_in("admin", password + "x") is None
    assert password not in (tmp_path / "staff.json").read_text()  # only its hash is in the staff file
    assert dev_console_admin(settings, env) == password  # the next start prints the same sign-in


def test_no_dev_admin_when_the_staff_file_is_configured(tmp_path, monkeypatch):
    staff = tmp_path / "people.json"
    monkeypatch.setenv("CRM_STAFF_FILE", str(staff))
    monkeypatch.setenv("CRM_CONSOLE_PORT", "8100")
    settings = Settings(_env_file=None, data_dir=str(tmp_path), api_keys="")
    env = dev_environment(settings)
    assert dev_console_admin(settings, env) is None and not staff.exists()
    assert console_banner(settings, {**env, **os.environ}, None) == "  console    http://127.0.0.1:8100/"
