"""The in-process console and its recording services, for every console unit test module."""

from tests.unit.console.test_console_session import console, services  # noqa: F401 (fixtures)
