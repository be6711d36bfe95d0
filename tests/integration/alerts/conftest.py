"""The alerts store under test: SQLite, mongomock, and a real MongoDB when CRM_TEST_MONGODB_URL is set."""

from __future__ import annotations

import os
import uuid

import pytest

from services.alerts.store_mongo import MongoAlertsStore
from services.alerts.store_sqlite import SqliteAlertsStore
from shared.storage import MongoDb


@pytest.fixture(params=["sqlite", "mongomock", "mongodb"])
def store(request, tmp_path):
    """A fresh, empty alerts store of each kind."""
    if request.param == "sqlite":
        s = SqliteAlertsStore(tmp_path / "alerts.db")
        yield s
        s.close()
        return
    if request.param == "mongomock":
        import mongomock

        yield MongoAlertsStore(MongoDb(mongomock.MongoClient(tz_aware=True)[f"t_{uuid.uuid4().hex[:8]}"]))
        return
    url = os.environ.get("CRM_TEST_MONGODB_URL")
    if not url:
        pytest.skip("CRM_TEST_MONGODB_URL is not set: no MongoDB server in this environment")
    from pymongo import MongoClient

    client = MongoClient(url, tz_aware=True)
    name = f"crm_test_alerts_{uuid.uuid4().hex[:8]}"
    try:
        yield MongoAlertsStore(MongoDb(client[name]))
    finally:
        client.drop_database(name)
        client.close()
