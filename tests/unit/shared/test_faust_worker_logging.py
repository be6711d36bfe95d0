"""A faust worker at WARNING must not leave the root logger at DEBUG (a debug record per message sent)."""

from __future__ import annotations

import logging

import pytest

from shared.settings import Settings
from shared.streaming.kafka import faust_app, faust_worker


@pytest.fixture
def restored_logging():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


@pytest.mark.parametrize("level, expected", [("warning", logging.WARNING), ("error", logging.ERROR),
                                             ("info", logging.INFO)])
def test_worker_logs_at_the_level_asked_for(tmp_path, restored_logging, level, expected):
    app = faust_app("logtest", Settings(_env_file=None, data_dir=str(tmp_path)))
    faust_worker(app, level)._setup_logging()

    assert logging.getLogger().getEffectiveLevel() == expected
    # kafka-python logs every message it sends at debug: that record must not even be built.
    assert not logging.getLogger("kafka.producer.kafka").isEnabledFor(logging.DEBUG)


def test_faust_own_worker_at_warning_put_root_at_debug(tmp_path, restored_logging):
    """What faust_worker avoids: faust's spinner lowers the root logger to DEBUG at WARNING and above."""
    from faust import Worker

    app = faust_app("logtest", Settings(_env_file=None, data_dir=str(tmp_path)))
    Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)._setup_logging()

    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
