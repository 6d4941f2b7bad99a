"""Errors with an HTTP meaning, raised anywhere and rendered once by the API middleware.

ApiError (status, code, message, details)
├── BadRequest          400  malformed input
├── Unauthorized        401  no or bad credentials
├── Forbidden           403  credentials without the needed scope
├── NotFound            404
├── Conflict            409  the resource is not in a state that allows this
├── PayloadTooLarge     413
├── Unprocessable       422  well-formed but semantically wrong
├── TooManyRequests     429  with retry_after
└── Unavailable         503  not ready
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 500
    default_code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details


class BadRequest(ApiError):
    status = 400
    default_code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    default_code = "unauthorized"


class Forbidden(ApiError):
    status = 403
    default_code = "forbidden"


class NotFound(ApiError):
    status = 404
    default_code = "not_found"


class Conflict(ApiError):
    status = 409
    default_code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    default_code = "payload_too_large"


class Unprocessable(ApiError):
    status = 422
    default_code = "unprocessable"


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
