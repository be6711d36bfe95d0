"""How many worker processes ``crm up`` starts for each service, by default and when told."""

from __future__ import annotations

import os

import pytest

from crm.platform import Platform
from shared.settings import Settings, usable_cores

SERVICES = ["identity", "loyalty", "alerts", "campaigns"]


@pytest.fixture(autouse=True)
def no_worker_settings(monkeypatch):
    for service in SERVICES:
        monkeypatch.delenv(f"CRM_{service.upper()}_WORKERS", raising=False)


def plan(**env) -> list[tuple[str, int]]:
    return Platform(settings=Settings(_env_file=None, **env), env={}, services=SERVICES).workers()


@pytest.mark.parametrize("cores", [1, 2])
def test_on_two_cores_or_fewer_identity_runs_one_worker_like_every_other_service(monkeypatch, cores):
    monkeypatch.setattr("shared.settings.usable_cores", lambda: cores)
    assert plan() == [("identity", 0), ("loyalty", 0), ("alerts", 0), ("campaigns", 0)]


@pytest.mark.parametrize("cores", [3, 4, 16])
def test_with_more_cores_identity_runs_a_second_worker(monkeypatch, cores):
    monkeypatch.setattr("shared.settings.usable_cores", lambda: cores)
    assert plan() == [("identity", 0), ("identity", 1), ("loyalty", 0), ("alerts", 0), ("campaigns", 0)]


def test_a_worker_count_set_in_the_environment_wins_over_the_default_whatever_the_cores(monkeypatch):
    monkeypatch.setattr("shared.settings.usable_cores", lambda: 2)
    monkeypatch.setenv("CRM_IDENTITY_WORKERS", "3")
    monkeypatch.setenv("CRM_ALERTS_WORKERS", "2")
    assert plan() == [("identity", 0), ("identity", 1), ("identity", 2), ("loyalty", 0), ("alerts", 0),
                      ("alerts", 1), ("campaigns", 0)]
    monkeypatch.setattr("shared.settings.usable_cores", lambda: 8)
    monkeypatch.setenv("CRM_IDENTITY_WORKERS", "1")
    assert [w for w in plan() if w[0] == "identity"] == [("identity", 0)]


def test_a_worker_count_below_one_is_refused_naming_the_setting(monkeypatch):
    monkeypatch.setenv("CRM_IDENTITY_WORKERS", "0")
    with pytest.raises(ValueError, match="identity_workers"):
        Settings(_env_file=None)


def test_the_cores_counted_are_those_this_process_may_run_on():
    assert usable_cores() == len(os.sched_getaffinity(0))
