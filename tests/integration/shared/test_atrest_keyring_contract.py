"""The keyring on every backend (SQLite file, mongomock, a real MongoDB when set): data keys wrapped by the
master key, kept apart from the data, opened only under the right customer and field, gone for good when
shredded; a wrong master key fails clearly."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

import pytest

from shared.settings import Settings
from shared.storage.crypto import (
    PREFIX,
    SERVICE,
    KeyRing,
    MasterKeyError,
    MongoKeys,
    SqliteKeys,
    Unreadable,
    keyring_path,
    new_master_key,
    parse_master_key,
)
from tests.integration.shared.backends import BACKENDS, mongo_db, sqlite_file

MASTER = os.urandom(32)


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path) -> Iterator[object]:
    """A fresh, empty place for wrapped keys on each backend."""
    if request.param == "sqlite":
        from shared.storage.base import SqliteDb
        from shared.storage.crypto import KEYS_SQL

        yield SqliteKeys(SqliteDb(keyring_path(sqlite_file(tmp_path, "data")), KEYS_SQL))
        return
    with mongo_db(request.param) as mdb:
        yield MongoKeys(mdb)


def test_a_sealed_field_opens_for_its_customer_and_field_only(backend):
    ring = KeyRing(MASTER, backend)
    token = ring.seal("c_1", "records.phone", "+8613512340001")
    assert token.startswith(PREFIX) and "13512340001" not in token
    assert ring.seal("c_1", "records.phone", "+8613512340001") != token  # a fresh nonce every time
    assert ring.open("c_1", "records.phone", token) == "+8613512340001"
    ring.seal("c_2", "records.phone", "+8613698760002")
    with pytest.raises(Unreadable, match="sealed records.phone does not open for this customer"):
        ring.open("c_2", "records.phone", token)  # copied to another customer
    with pytest.raises(Unreadable):
        ring.open("c_1", "attributes.name", token)  # copied to another field
    raw = bytearray(base64.b64decode(token[len(PREFIX):]))
    raw[-1] ^= 1
    with pytest.raises(Unreadable):
        ring.open("c_1", "records.phone", PREFIX + base64.b64encode(bytes(raw)).decode())  # tampered


def test_none_stays_none_and_text_written_before_encryption_reads_as_it_is(backend):
    ring = KeyRing(MASTER, backend)
    assert ring.seal("c_1", "records.phone", None) is None
    assert ring.open("c_1", "records.phone", None) is None
    assert ring.open("c_1", "records.phone", "+8613512340001") == "+8613512340001"
    assert ring.open_bytes(SERVICE, "outbox.value", b'{"a":1}') == b'{"a":1}'
    sealed = ring.seal_bytes(SERVICE, "outbox.value", b'{"phone":"13512340001"}')
    assert b"13512340001" not in sealed
    assert ring.open_bytes(SERVICE, "outbox.value", sealed) == b'{"phone":"13512340001"}'


def test_shred_makes_every_copy_unreadable_for_good_and_a_new_key_does_not_open_old_copies(backend):
    ring, other_process = KeyRing(MASTER, backend), KeyRing(MASTER, backend, cache_s=0)
    token = ring.seal("c_1", "attributes.name", "Zhang San")
    kept = ring.seal("c_2", "attributes.name", "Li Si")
    backup = str(token)  # a copy elsewhere: a backup, a replica
    assert other_process.open("c_1", "attributes.name", backup) == "Zhang San"
    assert ring.shred("c_1") is True
    assert ring.shred("c_1") is False
    assert ring.open("c_1", "attributes.name", token) is None
    assert other_process.open("c_1", "attributes.name", backup) is None
    assert KeyRing(MASTER, backend).open("c_1", "attributes.name", backup) is None
    # The customer comes back (a new event): a new key, which opens nothing sealed before.
    ring.seal("c_1", "attributes.name", "Someone New")
    with pytest.raises(Unreadable):
        ring.open("c_1", "attributes.name", backup)
    assert ring.open("c_2", "attributes.name", kept) == "Li Si"


def test_two_workers_creating_a_customer_key_at_once_end_up_with_one(backend):
    a, b = KeyRing(MASTER, backend), KeyRing(MASTER, backend)
    a.check(), b.check()
    b.prepare(["c_1"])
    a_token = a.seal("c_1", "f", "x")  # a had not seen b's key: it finds it instead of making its own
    assert b.open("c_1", "f", a_token) == "x"
    assert KeyRing(MASTER, backend).open("c_1", "f", b.seal("c_1", "f", "y")) == "y"


def test_a_batch_of_new_customers_gets_a_key_each_and_a_key_held_already_is_kept(backend):
    other_worker = KeyRing(MASTER, backend)
    held = other_worker.seal("c_2", "attributes.city", "Shanghai")
    ring = KeyRing(MASTER, backend)
    ring.prepare([f"c_{i}" for i in range(1, 301)])  # as a batch of an import's new members: c_2 is held
    tokens = {i: ring.seal(f"c_{i}", "attributes.city", f"city {i}") for i in range(1, 301)}
    reader = KeyRing(MASTER, backend)  # another process, reading what was kept
    assert {i: reader.open(f"c_{i}", "attributes.city", t) for i, t in tokens.items()} == {
        i: f"city {i}" for i in range(1, 301)}
    assert reader.open("c_2", "attributes.city", held) == "Shanghai"


def test_a_wrong_master_key_fails_clearly_at_once(backend):
    ring = KeyRing(MASTER, backend)
    token = ring.seal("c_1", "records.phone", "+8613512340001")
    wrong = KeyRing(os.urandom(32), backend)
    with pytest.raises(MasterKeyError, match="CRM_MASTER_KEY does not open this store's data keys"):
        wrong.check()
    with pytest.raises(MasterKeyError):
        wrong.open("c_1", "records.phone", token)


def test_the_data_keys_are_held_wrapped_never_in_clear(backend):
    ring = KeyRing(MASTER, backend)
    ring.prepare(["c_1"])
    wrapped = backend.get_many(["c_1"])["c_1"]
    assert len(wrapped) == 12 + 32 + 16  # nonce, key, tag: AES-GCM under the master key
    key = ring._unwrap("c_1", wrapped)  # noqa: SLF001 - the data key itself, to show it is not stored
    assert len(key) == 32 and key not in wrapped
    with pytest.raises(MasterKeyError):
        ring._unwrap("c_2", wrapped)  # noqa: SLF001 - a wrapped key moved to another customer does not open


def test_master_key_settings_are_checked_at_start_and_required_in_prod():
    key = new_master_key()
    assert parse_master_key(key) == base64.b64decode(key)
    assert Settings(_env_file=None, master_key=key).master_key_bytes() == base64.b64decode(key)
    for bad, why in (("not base64!", "base64"), (base64.b64encode(b"short").decode(), "32 bytes")):
        with pytest.raises(ValueError, match=why) as err:
            Settings(_env_file=None, master_key=bad)
        assert bad not in str(err.value)  # a secret, even a malformed one, never printed
    with pytest.raises(ValueError, match="CRM_MASTER_KEY"):
        Settings(_env_file=None, env="prod", pseudonym_secret="x" * 20, api_keys="k:admin", token_secret="t" * 32)
    assert Settings(_env_file=None, env="prod", pseudonym_secret="x" * 20, api_keys="k:admin", token_secret="t" * 32,
                    master_key=key).master_key_bytes() == base64.b64decode(key)
