"""Domain errors and their one mapping to HTTP: JSON with a machine-readable code and a message."""

from __future__ import annotations


class DomainError(Exception):
    """Base: ``code`` is for machines, ``message`` for people; neither carries personal data."""

    status = 400
    # Seconds a client should wait before trying again; sent as ``Retry-After`` when set.
    retry_after: int | None = None

    def __init__(self, code: str, message: str, *, details: object | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        if retry_after is not None:
            self.retry_after = retry_after

    def payload(self) -> dict:
        """The JSON body of the answer: ``{"error": {"code", "message", "details"?}}``."""
        error: dict = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}

    def headers(self) -> dict[str, str]:
        """Headers the answer carries (``Retry-After`` when the client should come back later)."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class InvalidInput(DomainError):
    status = 422


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class TooLarge(DomainError):
    status = 413


class UnsupportedMediaType(DomainError):
    status = 415


class Unavailable(DomainError):
    status = 503
    # A 503 always tells the client when to come back: the cause (store locked, broker away) is passing.
    retry_after = 5
