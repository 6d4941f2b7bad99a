"""Why a request cannot be carried out, in the domain's terms. The domain and the store
raise these; the HTTP API maps them to statuses in one place (gateway.api.errors).

DomainError (code, message, details)
├── Malformed    the input cannot be read (a cursor not made here, settings that do not parse)
├── NotFound     what it names does not exist
├── Conflict     it exists, but its state does not allow this
├── Gone         it existed, and was erased for good
├── Invalid      well-formed, but it makes no sense here (an unknown agent, a reused key)
└── StoreUnavailable  the database cannot be reached now: nothing was done, try again
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details


class Malformed(DomainError):
    default_code = "bad_request"


class NotFound(DomainError):
    default_code = "not_found"


class Conflict(DomainError):
    default_code = "conflict"


class Gone(DomainError):
    default_code = "gone"


class Invalid(DomainError):
    default_code = "unprocessable"


class StoreUnavailable(DomainError):
    default_code = "store_unavailable"
