"""Erasure rules (issue 12): which pseudonyms stand for an erased person, which raw messages carry one,
and how far an erasure has come."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from services.identity.domain.cleaning import Cleaning, Ident, Pseudo
from shared.contract.events import IDENTIFIER_TYPES
from shared.privacy import PhoneError, normalize_phone


def pseudonyms_of(idents: Iterable[Ident], pseudo: Pseudo) -> list[str]:
    """The keyed pseudonym of each identifier: what identity keeps of an erased person's identifiers."""
    return sorted({pseudo(kind, value) for kind, value in idents})


def identifiers_in(raw: bytes, cleaning: Cleaning) -> list[Ident]:
    """The identifiers a raw channel event carries, cleaned as ingestion cleans them, from a message that
    may be invalid in every other way (a dead letter): whatever cannot be read is skipped."""
    try:
        identity = json.loads(raw).get("data", {}).get("identity", {})
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        return []
    if not isinstance(identity, dict):
        return []
    out: list[Ident] = []
    for kind in IDENTIFIER_TYPES:
        value = identity.get(kind)
        if not isinstance(value, str) or not value.strip():
            continue
        value = value.strip().lower() if kind == "email" else value.strip()
        if kind == "phone":
            try:
                value = normalize_phone(value, cleaning.region)
            except PhoneError:
                continue
        out.append((kind, value))
    return out


def status(confirmed: dict[str, str | None], services: Iterable[str]) -> dict:
    """``pending`` until every service has confirmed, then ``done``; each service ``pending`` or ``done``."""
    each = {name: "done" if confirmed.get(name) else "pending" for name in services}
    return {"status": "done" if all(v == "done" for v in each.values()) else "pending", "services": each}


@dataclass(frozen=True)
class ErasedEvent:
    """A channel event that cannot be processed and carries an identifier of an erased person: dropped
    (counted), never kept as a dead letter, whose payload would bring their data back."""
