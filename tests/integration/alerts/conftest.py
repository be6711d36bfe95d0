"""The alerts store under test: SQLite, mongomock, and a real MongoDB when CRM_TEST_MONGODB_URL is set."""

from __future__ import annotations

import pytest

from services.alerts.store.mongo import MongoAlertsStore
from services.alerts.store.sqlite import SqliteAlertsStore
from tests.integration.shared.backends import BACKENDS, mongo_db, sqlite_file


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """A fresh, empty alerts store of each kind."""
    if request.param == "sqlite":
        s = SqliteAlertsStore(sqlite_file(tmp_path, "alerts"))
        yield s
        s.close()
        return
    with mongo_db(request.param) as db:
        yield MongoAlertsStore(db)
