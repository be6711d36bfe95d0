"""Staff sign-in: a user name and password from the staff file in exchange for a short-lived signed token."""

from __future__ import annotations

from functools import lru_cache

from shared.access.staff import StaffDirectory
from shared.access.tokens import Tokens
from shared.http.errors import Unauthorized
from shared.settings import Settings


@lru_cache(maxsize=8)
def staff_directory(path: str) -> StaffDirectory:
    """The process-wide staff directory of one staff file (re-read when the file changes)."""
    return StaffDirectory(path)


def sign_in(staff: StaffDirectory, settings: Settings, user: str, password: str) -> tuple[str, int]:
    """A token and its lifetime in seconds; a wrong password and an unknown user get the same 401."""
    caller = staff.sign_in(user, password)
    if caller is None:
        raise Unauthorized("invalid_credentials", "wrong user name or password")
    return Tokens(settings.token_key(), ttl_s=settings.token_ttl_s).issue(caller), settings.token_ttl_s
