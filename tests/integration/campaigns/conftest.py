"""Both store adapters behind one fixture: SQLite, mongomock, and a real MongoDB when one is configured."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from services.campaigns.store import CampaignsStore


@pytest.fixture(params=["sqlite", "mongomock", "mongodb"])
def store(request, tmp_path) -> Iterator[CampaignsStore]:
    """A fresh, empty campaigns store of each kind."""
    if request.param == "sqlite":
        from services.campaigns.store_sqlite import SqliteCampaignsStore

        yield SqliteCampaignsStore(tmp_path / "crm.campaigns.db")
        return
    from services.campaigns.store_mongo import MongoCampaignsStore
    from shared.storage import MongoDb

    if request.param == "mongomock":
        import mongomock

        yield MongoCampaignsStore(MongoDb(mongomock.MongoClient()[f"t_{uuid.uuid4().hex[:8]}"]))
        return
    url = os.environ.get("CRM_TEST_MONGODB_URL")
    if not url:
        pytest.skip("CRM_TEST_MONGODB_URL is not set: no MongoDB server to test against")
    from pymongo import MongoClient

    client = MongoClient(url, tz_aware=True)
    name = f"crm_test_campaigns_{uuid.uuid4().hex[:8]}"
    try:
        yield MongoCampaignsStore(MongoDb(client[name]))
    finally:
        client.drop_database(name)
        client.close()
