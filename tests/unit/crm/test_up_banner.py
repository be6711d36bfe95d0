"""What ``crm up`` prints about API keys: it printed the first key of CRM_API_KEYS labelled "admin"
whatever its role; now only a generated development key is ever printed."""

from __future__ import annotations

from crm.platform import dev_environment, key_banner
from shared.settings import Settings


def test_a_configured_key_is_never_printed_and_its_roles_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_API_KEYS", "shop-reader-key-1:reader,ops-key-2:operator")
    settings = Settings(_env_file=None, data_dir=str(tmp_path))
    banner = key_banner(settings, dev_environment(settings))
    assert banner == "  API keys   2 configured in CRM_API_KEYS (reader, operator; not printed)"
    assert "shop-reader-key-1" not in banner and "admin" not in banner


def test_the_generated_development_key_is_printed_as_admin(tmp_path, monkeypatch):
    monkeypatch.delenv("CRM_API_KEYS", raising=False)
    settings = Settings(_env_file=None, data_dir=str(tmp_path), api_keys="")
    env = dev_environment(settings)
    key = (tmp_path / "dev-api-key").read_text().strip()
    assert env["CRM_API_KEYS"] == f"{key}:admin"
    assert key_banner(settings, env) == (f"  API key    {key}   (admin, generated for development; "
                                         "send as Authorization: Bearer <key>)")


def test_crm_up_generates_a_token_secret_once_and_points_at_the_staff_file_in_the_data_dir(tmp_path, monkeypatch):
    for name in ("CRM_TOKEN_SECRET", "CRM_STAFF_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None, data_dir=str(tmp_path))
    env = dev_environment(settings)
    secret = (tmp_path / "token.key").read_text().strip()
    assert (env["CRM_TOKEN_SECRET"], len(secret), oct((tmp_path / "token.key").stat().st_mode & 0o777)) == (
        secret, 64, "0o600")
    assert env["CRM_STAFF_FILE"] == str(tmp_path / "staff.json")
    assert dev_environment(settings)["CRM_TOKEN_SECRET"] == secret  # kept across restarts: tokens stay valid
