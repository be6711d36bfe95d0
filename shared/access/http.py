"""What routes declare to take part in masking and audit: ``?reveal=true`` (admin only) and ``X-Reason``."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Header, Query

from shared.access.audit import REASON_MAX
from shared.http.errors import Forbidden


def reason_header(x_reason: str | None = Header(None, alias="X-Reason", max_length=REASON_MAX,
                                               description="why (kept in the audit log, scrubbed of personal data)")
                  ) -> str | None:
    """The ``X-Reason`` header a caller may send with a write or a reveal."""
    return x_reason


def reveal_query(reveal: bool = Query(False, description="show personal data unmasked (admin only; audited)")
                 ) -> bool:
    """The ``reveal`` query parameter (checked against the role by :func:`check_reveal`)."""
    return reveal


Reveal = Depends(reveal_query)
Reason = Depends(reason_header)


def check_reveal(caller: Any, reveal: bool) -> bool:
    """Whether to show personal data unmasked: only when asked, and only to an admin (403 otherwise)."""
    if reveal and not caller.at_least("admin"):
        raise Forbidden("reveal_forbidden", "only an admin may reveal personal data")
    return reveal
