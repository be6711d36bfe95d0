"""The review probes of loyalty's corrections run on each loyalty store, as loyalty's own tests do."""

from tests.integration.loyalty.conftest import sqlite_store, store  # noqa: F401
