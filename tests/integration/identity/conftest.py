"""Identity's store under every backend of the contract suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.identity.store import IdentityStore
from services.identity.store.mongo import MongoIdentityStore
from services.identity.store.sqlite import SqliteIdentityStore
from tests.integration.shared.backends import BACKENDS, TRANSACTIONAL, mongo_db, sqlite_file


def _open(kind: str, tmp_path) -> Iterator[IdentityStore]:
    if kind == "sqlite":
        store = SqliteIdentityStore(sqlite_file(tmp_path, "identity"))
        yield store
        store.close()
        return
    with mongo_db(kind) as mdb:
        yield MongoIdentityStore(mdb)


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path) -> Iterator[IdentityStore]:
    """A fresh identity store on each backend."""
    yield from _open(request.param, tmp_path)


@pytest.fixture(params=TRANSACTIONAL)
def tx_store(request, tmp_path) -> Iterator[IdentityStore]:
    """A fresh identity store on each backend whose transactions roll back."""
    yield from _open(request.param, tmp_path)
