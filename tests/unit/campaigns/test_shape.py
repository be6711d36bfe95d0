"""Campaigns has the one service shape (issue 11): the same top-level modules with the same roles as
every service, the store protocol apart from its adapters, routes that declare their dependencies,
one table from consumed message type to handler, domain rules free of infrastructure."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from services.campaigns import messages
from shared.contract.events import DeliveryEvent
from shared.contract.messages import (
    CustomerErased,
    CustomerEventResolved,
    CustomerMerged,
    CustomerOwnerChanged,
    ViewPartUpdated,
)

ROOT = Path(__file__).resolve().parents[3] / "services" / "campaigns"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


def test_campaigns_has_exactly_the_top_level_entries_of_every_service():
    entries = {p.name for p in ROOT.iterdir() if p.name != "__pycache__"}
    assert entries == {"__init__.py", "domain", "messages.py", "handlers", "store", "agents.py", "api.py",
                       "schemas.py", "views.py", "config.py", "app.py"}
    assert {"__init__.py", "sqlite.py", "mongo.py"} <= {p.name for p in (ROOT / "store").iterdir()}
    assert {"__init__.py", "consume.py", "commands.py", "timers.py"} <= {p.name for p in (ROOT / "handlers").iterdir()}


def test_the_store_protocol_module_imports_no_adapter_and_no_driver():
    imported = _imports(ROOT / "store" / "__init__.py")
    assert not {m for m in imported if m.startswith("services.campaigns.store")}
    assert not {m for m in imported if m.split(".")[0] in {"sqlite3", "pymongo", "mongomock"}}


def test_routes_take_their_dependencies_as_declared_not_from_the_app_state():
    assert "app.state" not in (ROOT / "api.py").read_text()


def test_domain_rules_import_no_infrastructure():
    for path in (ROOT / "domain").glob("*.py"):
        roots = {m.split(".")[0] for m in _imports(path)}
        assert not roots & {"pymongo", "sqlite3", "faust", "fastapi", "opentelemetry"}, path.name


def test_one_table_maps_each_consumed_type_to_a_handler_of_the_one_signature():
    assert set(messages.HANDLERS) == {CustomerEventResolved, CustomerMerged, ViewPartUpdated, CustomerOwnerChanged,
                                      CustomerErased, DeliveryEvent}
    for handler in set(messages.HANDLERS.values()):
        params = list(inspect.signature(handler).parameters.values())
        assert [p.kind for p in params] == [inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.KEYWORD_ONLY]
        assert [p.name for p in params[1:]] == ["deps", "outcome"], handler.__name__
