"""The databases a store contract suite runs against: SQLite, mongomock, and a real MongoDB when
``CRM_TEST_MONGODB_URL`` is set (the only reason a backend is skipped).

Any service's contract suite can use these: ``@pytest.fixture(params=BACKENDS)`` and build its
store from ``sqlite_file(tmp_path)`` or ``mongo_db(request.param)``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared.storage.base import MongoDb

BACKENDS = ("sqlite", "mongomock", "mongodb")
# Backends whose transactions roll back (mongomock has none; MongoDb runs the block without one).
TRANSACTIONAL = ("sqlite", "mongodb")
MONGODB_URL_VAR = "CRM_TEST_MONGODB_URL"


def sqlite_file(tmp_path: Path, name: str = "store") -> Path:
    """A fresh SQLite file for one test."""
    return tmp_path / f"{name}-{uuid.uuid4().hex[:8]}.db"


@contextmanager
def mongo_db(kind: str) -> Iterator[MongoDb]:
    """A fresh, empty MongoDB database of one test; a real server's is dropped afterwards."""
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    if kind == "mongomock":
        import mongomock

        yield MongoDb(mongomock.MongoClient(tz_aware=True)[name])
        return
    url = os.environ.get(MONGODB_URL_VAR)
    if not url:
        pytest.skip(f"{MONGODB_URL_VAR} is not set: no MongoDB server to test against")
    from pymongo import MongoClient

    client = MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=10_000)
    try:
        yield MongoDb(client[name])
    finally:
        client.drop_database(name)
        client.drop_database(f"{name}_keys")  # the keyring beside it (shared/storage/crypto.py)
        client.close()
