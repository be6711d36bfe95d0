"""The four services together in this process against a fresh broker (one per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.alerts.config import AlertsConfig
from services.campaigns.config import CampaignsSettings
from services.loyalty.config import LoyaltySettings
from shared.settings import Settings
from shared.streaming.kafka import ensure_topics
from tests.integration.flows.support import ADMIN, OPERATOR, READER, Flow
from tests.integration.platform_in_process import Platform

pytestmark = pytest.mark.broker


@pytest.fixture
def flow(broker, tmp_path) -> Iterator[Flow]:
    """Identity, loyalty, alerts and campaigns with their default rules; every clock but identity's
    starts where the test sets it."""
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path),
                        api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader",
                        pseudonym_secret="flows-test-secret-0123456789")
    ensure_topics(settings)
    platform = Platform(settings, options={
        "loyalty": {"config": LoyaltySettings(_env_file=None)},
        "alerts": {"config": AlertsConfig(_env_file=None)},
        "campaigns": {"config": CampaignsSettings(_env_file=None)},
    })
    try:
        yield Flow(platform)
    finally:
        platform.close()
