"""Domain errors and their one mapping to HTTP: JSON with a machine-readable code and a message."""

from __future__ import annotations


class DomainError(Exception):
    """Base: ``code`` is for machines, ``message`` for people; neither carries personal data."""

    status = 400

    def __init__(self, code: str, message: str, *, details: object | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


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


class Unavailable(DomainError):
    status = 503
