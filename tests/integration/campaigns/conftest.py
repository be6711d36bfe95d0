"""Both store adapters behind one fixture: SQLite, mongomock, and a real MongoDB when one is configured."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.campaigns.store import CampaignsStore
from services.campaigns.store.mongo import MongoCampaignsStore
from services.campaigns.store.sqlite import SqliteCampaignsStore
from tests.integration.shared.backends import BACKENDS, mongo_db, sqlite_file


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path) -> Iterator[CampaignsStore]:
    """A fresh, empty campaigns store of each kind."""
    if request.param == "sqlite":
        yield SqliteCampaignsStore(sqlite_file(tmp_path, "campaigns"))
        return
    with mongo_db(request.param) as db:
        yield MongoCampaignsStore(db)
