"""How many worker processes ``crm up`` starts for each service, by default and when told."""

from __future__ import annotations

import os

import pytest

from crm.platform import Platform
from shared import settings as settings_module
from shared.settings import Settings, usable_cores

SERVICES = ["identity", "loyalty", "alerts", "campaigns"]


@pytest.fixture(autouse=True)
def no_worker_settings(monkeypatch):
    for service in SERVICES:
        monkeypatch.delenv(f"CRM_{service.upper()}_WORKERS", raising=False)


def plan(env_file=None) -> list[tuple[str, int]]:
    return Platform(settings=Settings(_env_file=env_file), env={}, services=SERVICES).workers()


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


def test_a_worker_count_in_the_env_file_wins_over_the_default(monkeypatch, tmp_path):
    monkeypatch.setattr("shared.settings.usable_cores", lambda: 2)
    (tmp_path / ".env").write_text("CRM_IDENTITY_WORKERS=3\n")
    assert [w for w in plan(tmp_path / ".env") if w[0] == "identity"] == [("identity", 0), ("identity", 1),
                                                                          ("identity", 2)]


@pytest.mark.parametrize("value", ["0", "17", "two"])
def test_a_worker_count_out_of_range_is_refused_naming_the_setting(monkeypatch, value):
    monkeypatch.setenv("CRM_IDENTITY_WORKERS", value)
    with pytest.raises(ValueError, match="identity_workers"):
        Settings(_env_file=None)


@pytest.fixture
def cpus(monkeypatch, tmp_path):
    """A process that may run on ``affinity`` CPUs of a 64-CPU machine, under the cgroup quota ``cpu_max``
    (a ``cpu.max`` line; None: no such file)."""
    def set_(affinity: int, cpu_max: str | None = None) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False)
        monkeypatch.setattr(os, "cpu_count", lambda: 64)
        path = tmp_path / "cpu.max"
        path.unlink(missing_ok=True)
        if cpu_max is not None:
            path.write_text(cpu_max + "\n")
        monkeypatch.setattr(settings_module, "CGROUP_CPU_MAX", path)
    return set_


def test_the_cores_counted_are_those_the_process_may_run_on_not_the_machines(cpus):
    cpus(2)
    assert usable_cores() == 2 and Settings(_env_file=None).identity_workers == 1
    cpus(4)
    assert usable_cores() == 4 and Settings(_env_file=None).identity_workers == 2


@pytest.mark.parametrize(("cpu_max", "cores", "workers"), [
    ("200000 100000", 2, 1),  # docker run --cpus=2 on a 16-CPU host
    ("150000 100000", 2, 1),  # a share of a core still needs that core
    ("50000 100000", 1, 1),
    ("250000 100000", 3, 2),
    ("max 100000", 16, 2),  # no quota: the affinity stands
    ("2000000 100000", 16, 2),  # a quota above the affinity does not add CPUs
    ("garbled", 16, 2),
])
def test_a_containers_cpu_quota_caps_the_cores_counted(cpus, cpu_max, cores, workers):
    cpus(16, cpu_max)
    assert usable_cores() == cores and Settings(_env_file=None).identity_workers == workers


def test_without_an_affinity_call_the_machines_count_is_used_and_one_when_unknown(cpus, monkeypatch):
    cpus(4)
    monkeypatch.delattr(os, "sched_getaffinity")
    assert usable_cores() == 64
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cores() == 1
