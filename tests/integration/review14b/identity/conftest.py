"""The review probes of identity's corrections run on each identity store, as identity's own tests do."""

from tests.integration.identity.conftest import store  # noqa: F401
