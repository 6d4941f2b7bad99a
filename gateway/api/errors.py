"""Errors as the HTTP API answers them: the domain's errors (kernel.errors) mapped to
statuses here and nowhere else, and the errors only the HTTP surface has.

DomainError                  (kernel.errors)
├── Malformed          400
├── NotFound           404
├── Conflict           409
├── Gone               410   erased for good
├── Invalid            422
├── StoreUnavailable   503   the database cannot be reached (retry later)
└── ApiError                 errors of the HTTP surface itself
    ├── Unauthorized   401   no or bad credentials
    ├── Forbidden      403   credentials without the needed scope
    ├── PayloadTooLarge 413
    ├── UnsupportedMediaType 415  a file of a type that is not taken
    ├── TooManyRequests 429  with retry_after
    └── Unavailable    503   not ready
"""

from __future__ import annotations

from typing import Any

from kernel.errors import (
    Conflict,
    DomainError,
    Gone,
    Invalid,
    Malformed,
    NotFound,
    StoreUnavailable,
)

_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (Malformed, 400),
    (NotFound, 404),
    (Conflict, 409),
    (Gone, 410),
    (Invalid, 422),
    (StoreUnavailable, 503),
)


class ApiError(DomainError):
    status = 500
    default_code = "internal_error"


class Unauthorized(ApiError):
    status = 401
    default_code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    default_code = "forbidden"


class PayloadTooLarge(ApiError):
    status = 413
    default_code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    default_code = "unsupported_type"


class TooManyRequests(ApiError):
    status = 429
    default_code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: float, code: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after


class Unavailable(ApiError):
    status = 503
    default_code = "unavailable"


def status_of(exc: DomainError) -> int:
    """The HTTP status an error is answered with."""
    if isinstance(exc, ApiError):
        return exc.status
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500
