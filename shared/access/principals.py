"""Who is calling: a principal (an API key or a signed-in staff account) with its role, scope and display name."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.access.scope import COMPANY
from shared.access.scope import Scope as AccessScope
from shared.settings import ROLES, Role


@dataclass(frozen=True)
class Caller:
    """Who is calling: a stable non-secret id (never the key), its role, scope and the name shown to people.

    ``name`` is what records and views show as "who did it": a staff account's user name, or for an API key
    ``api-key-`` and 8 hex digits of a keyed hash (shared/access/keys.py), never the key or a plain hash of it.
    """

    key_id: str
    role: Role
    scope: AccessScope = COMPANY
    name: str = ""
    # A staff token's id (``jti``) and expiry (epoch seconds), which sign-out revokes; None for an API key.
    token_id: str | None = field(default=None, compare=False)
    token_expires: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.key_id)

    def at_least(self, role: Role) -> bool:
        """Whether this caller's role includes ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)
