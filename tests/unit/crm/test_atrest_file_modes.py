"""Files under the data dir are the owner's alone: ``crm up``'s generated keys (the master key included),
the stores and their keyrings (WAL files too), span files and logs; never world- or group-readable, not
even for a moment after creation."""

from __future__ import annotations

import base64
import os
import stat

from crm.platform import dev_environment
from shared.observability.telemetry import JsonLinesSpanExporter
from shared.settings import Settings
from shared.storage.files import private_opener
from shared.storage.outbox import SqliteStore


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_crm_up_generates_a_private_master_key_into_a_private_data_dir(tmp_path, monkeypatch):
    for name in ("CRM_MASTER_KEY", "CRM_API_KEYS", "CRM_PSEUDONYM_SECRET", "CRM_IDENTITY_NAME_INDEX_KEY"):
        monkeypatch.delenv(name, raising=False)
    old = os.umask(0o022)  # a usual umask: the code, not the umask, must make them private
    try:
        data = tmp_path / "data"
        settings = Settings(_env_file=None, data_dir=str(data), api_keys="")
        env = dev_environment(settings)
    finally:
        os.umask(old)
    key = (data / "master.key").read_text().strip()
    assert env["CRM_MASTER_KEY"] == key and len(base64.b64decode(key)) == 32
    assert Settings(_env_file=None, master_key=key).master_key_bytes() == base64.b64decode(key)
    assert _mode(data) == 0o700
    assert {p.name: _mode(p) for p in data.iterdir()} == {
        "master.key": 0o600, "pseudonym.key": 0o600, "dev-api-key": 0o600, "token.key": 0o600,
        "name-index.key": 0o600}  # issue 16: identity's name index key, apart from the master key
    assert env["CRM_IDENTITY_NAME_INDEX_KEY"] == (data / "name-index.key").read_text().strip()
    assert len(env["CRM_IDENTITY_NAME_INDEX_KEY"]) == 64 and env["CRM_IDENTITY_NAME_INDEX_KEY"] != key
    # Started again, the same keys (the data sealed or indexed with them stays readable and findable).
    again = dev_environment(settings)
    assert (again["CRM_MASTER_KEY"], again["CRM_IDENTITY_NAME_INDEX_KEY"]) == (
        key, env["CRM_IDENTITY_NAME_INDEX_KEY"])


def test_store_files_keyrings_wal_and_span_files_are_created_private(tmp_path):
    old = os.umask(0o022)
    try:
        store = SqliteStore(tmp_path / "data" / "crm.identity.db")
        with store.transaction():
            pass
        exporter = JsonLinesSpanExporter(tmp_path / "data" / "traces" / "traces.jsonl")
        exporter.export([])
        with open(tmp_path / "data" / "service.log", "ab", opener=private_opener) as log:
            log.write(b"x")
    finally:
        os.umask(old)
    files = {p.name: _mode(p) for p in (tmp_path / "data").rglob("*")}
    assert {"crm.identity.db", "crm.identity.db-wal", "crm.identity.keys.db", "crm.identity.keys.db-wal",
            "traces.jsonl", "service.log"} <= set(files)
    assert {name: mode for name, mode in files.items() if mode & 0o077} == {}
    store.close()


def test_a_store_in_a_directory_others_share_leaves_that_directory_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    store = SqliteStore(shared / "crm.db")
    with store.transaction():
        pass
    assert _mode(shared) == 0o1777
    assert _mode(shared / "crm.db") == 0o600 and _mode(shared / "crm.keys.db") == 0o600
    store.close()
