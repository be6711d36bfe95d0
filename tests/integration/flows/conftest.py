"""The four services together in this process against a fresh broker (one per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.settings import Settings
from tests.integration.flows.support import ADMIN, OPERATOR, READER, Flow, running_flow

pytestmark = pytest.mark.broker


@pytest.fixture
def flow(broker, tmp_path) -> Iterator[Flow]:
    """Identity, loyalty, alerts and campaigns with their default rules; every clock but identity's
    starts where the test sets it."""
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path),
                        api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader",
                        pseudonym_secret="flows-test-secret-0123456789")
    with running_flow(settings) as flow:
        yield flow
