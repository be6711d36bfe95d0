"""Issue 15: the reports alerts serves over the facts it keeps (store KPIs, attendance, value, CLV, satisfaction)."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def attachment(*parts: str) -> dict[str, str]:
    """The Content-Disposition header of a CSV named from ``parts`` (a store id, a region, a month): only safe
    characters, since a header is latin-1 (a store or region named in Chinese was a 500) and a quote ends the name."""
    return {"Content-Disposition": f'attachment; filename="{"-".join(_UNSAFE.sub("_", p) for p in parts)}.csv"'}
