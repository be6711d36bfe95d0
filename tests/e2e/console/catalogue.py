"""Every message of the console, extracted with Babel's own extractors from its Python and templates."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir

CONSOLE = Path(__file__).resolve().parents[3] / "services" / "console"
METHODS = [("node_modules/**", "ignore"), ("**.py", "python"), ("templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}


def extracted() -> dict[str, list[tuple[str, int]]]:
    """Each message id with where it is used."""
    found: dict[str, list[tuple[str, int]]] = {}
    for file, line, message, _comments, _context in extract_from_dir(
            CONSOLE, method_map=METHODS, keywords=KEYWORDS,
            options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}}):
        for one in message if isinstance(message, tuple) else (message,):
            found.setdefault(one, []).append((file, line))
    return found
