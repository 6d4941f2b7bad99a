"""Errors a connector's send path raises, mapped from vendor errors at the client edge.

    SendError                  code, reason, retryable
    ├── TransientError         network trouble, 5xx, vendor "retry later"   (retry with backoff)
    │   └── RateLimited        vendor throttling; may carry retry_after      (retry after it)
    ├── AuthError              credentials revoked or expired: the channel goes BAD_CREDENTIALS
    │                          and its messages wait for a human to fix it   (held, not dropped)
    └── PermanentError         this message can never be sent as it is       (failed at once)
        ├── WindowClosed       the channel's reply window is closed
        └── RecipientUnavailable  blocked, deactivated, unknown recipient

The send path decides by class, never by matching message strings.
"""

from __future__ import annotations


class SendError(Exception):
    """A message could not be sent."""

    code = "send_failed"
    retryable = False

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code


class TransientError(SendError):
    code = "transient"
    retryable = True


class RateLimited(TransientError):
    code = "rate_limited"

    def __init__(
        self, reason: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason, code=code)
        self.retry_after = retry_after


class AuthError(SendError):
    code = "auth_failed"
    retryable = True


class PermanentError(SendError):
    code = "permanent"


class WindowClosed(PermanentError):
    code = "window_closed"


class RecipientUnavailable(PermanentError):
    code = "recipient_unavailable"
