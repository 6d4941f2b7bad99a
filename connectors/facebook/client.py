"""The Graph API over the injected httpx client: the only network I/O of the connector.

Graph errors become :mod:`connectors.errors` classes here, at the edge (channels.md
table 1.8), so nothing behind it matches on vendor codes or strings::

    window closed         10/2018278, 10/2534022, 10/2018065        WindowClosed
    recipient unavailable 551/*, 10/2018108, 100/2018001            RecipientUnavailable
    auth broken           190/*, 102                                AuthError
    permissions (config)  200-299, other 10/*                       PermanentError
    invalid parameter     100/*                                     PermanentError
    rate limited          4, 17, 32, 613, 80001-80099, HTTP 429     RateLimited
    transient             1, 2, 1200, is_transient, HTTP 5xx, I/O   TransientError

Every error's ``code`` keeps Graph's numbers (``window_closed:10/2018278``) and its reason
Graph's message and fbtrace_id. Page tokens travel as the ``access_token`` query parameter,
as Graph expects (with ``appsecret_proof`` when the app secret is given); they never
appear in a raised error, and httpx's request log lines have them redacted.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.errors import (
    AuthError,
    PermanentError,
    RateLimited,
    RecipientUnavailable,
    SendError,
    TransientError,
    WindowClosed,
)
from connectors.wire import json_or_none as _json
from connectors.wire import reach

log = logging.getLogger(__name__)

PROFILE_FIELDS = "first_name,last_name,profile_pic"
_PSID = re.compile(r"^[0-9]{1,64}$")
_SECRET_PARAM = re.compile(r"((?:access_token|appsecret_proof)=)[^&\s\"'>]+", re.IGNORECASE)
_REASON_MAX = 500

_WINDOW = {(10, 2018278), (10, 2534022), (10, 2018065)}
_RECIPIENT = {(10, 2018108), (100, 2018001)}
_AUTH_CODES = {190, 102}
_RATE_CODES = {4, 17, 32, 613}
_TRANSIENT_CODES = {1, 2, 1200}


class _RedactTokens(logging.Filter):
    """httpx logs every request's URL at INFO: strip the tokens out of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        if _SECRET_PARAM.search(text):
            record.msg, record.args = _SECRET_PARAM.sub(r"\1***", text), None
        return True


def _install_redaction() -> None:
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactTokens) for f in httpx_log.filters):
        httpx_log.addFilter(_RedactTokens())


_install_redaction()


@dataclass(frozen=True)
class Profile:
    name: str | None
    avatar_url: str | None


class GraphClient:
    """Graph API calls for one channel, on an httpx client the connector owns."""

    def __init__(
        self, http: httpx.AsyncClient, api_base: str, *, app_secret: SecretStr | None = None
    ) -> None:
        self._http = http
        self.api_base = api_base.rstrip("/")
        # With it, every call carries appsecret_proof (required when the app has "Require
        # App Secret" on; accepted otherwise).
        self._app_secret = app_secret

    def __repr__(self) -> str:
        return f"GraphClient({self.api_base!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, page_id: str, token: SecretStr, body: Mapping[str, Any]) -> str | None:
        """POST /{page_id}/messages; returns the message id (mid) Meta gave it."""
        data = await self._call("send", f"/{page_id}/messages", token, json_body=body)
        mid = data.get("message_id")
        return mid if isinstance(mid, str) and mid else None

    async def upload(
        self, page_id: str, token: SecretStr, kind: str, content: bytes, *, name: str, mime: str
    ) -> str:
        """POST /{page_id}/message_attachments (the Attachment Upload API, multipart
        ``message`` + ``filedata``); returns the attachment_id to send it by."""
        message = {"attachment": {"type": kind, "payload": {"is_reusable": True}}}
        data = await self._call(
            "upload",
            f"/{page_id}/message_attachments",
            token,
            form={"message": json.dumps(message)},
            files={"filedata": (name, content, mime)},
        )
        found = data.get("attachment_id")
        if not isinstance(found, str) or not found:
            raise PermanentError("the upload answer has no attachment_id", code="upload_failed")
        return found

    async def sender_action(self, page_id: str, token: SecretStr, body: Mapping[str, Any]) -> None:
        await self._call("sender_action", f"/{page_id}/messages", token, json_body=body)

    async def thread_control(
        self, page_id: str, token: SecretStr, action: str, body: Mapping[str, Any]
    ) -> None:
        """POST /{page_id}/pass_thread_control or /take_thread_control (handover)."""
        await self._call(action, f"/{page_id}/{action}", token, json_body=body)

    async def profile(self, psid: str, token: SecretStr) -> Profile:
        """The customer's name and picture (GET /{psid}?fields=...)."""
        if not _PSID.match(psid):
            raise PermanentError("not a page-scoped id", code="invalid_psid")
        data = await self._call("profile", f"/{psid}", token, params={"fields": PROFILE_FIELDS})
        first, last = _str(data.get("first_name")), _str(data.get("last_name"))
        name = " ".join(p for p in (first, last) if p) or _str(data.get("name")) or None
        picture = _str(data.get("profile_pic"))
        avatar = picture if picture and picture.startswith(("https://", "http://")) else None
        return Profile(name=name[:200] if name else None, avatar_url=avatar)

    async def check_token(self, token: SecretStr) -> None:
        """A cheap call that fails with AuthError when the page token no longer works."""
        await self._call("check_token", "/me", token, params={"fields": "id"})

    async def _call(
        self,
        what: str,
        path: str,
        token: SecretStr,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        form: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        secret = token.get_secret_value()
        query = {**(params or {}), "access_token": secret}
        if self._app_secret is not None:
            key = self._app_secret.get_secret_value().encode()
            query["appsecret_proof"] = hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
        resp = await reach(
            "the Graph API",
            self._http.request(
                "GET" if json_body is None and files is None else "POST",
                self.api_base + path,
                params=query,
                json=json_body,
                data=form,
                files=files,
            ),
        )
        if resp.is_success:
            data = _json(resp.content)
            return data if isinstance(data, dict) else {}
        error = classify(resp.status_code, resp.headers, resp.content, secrets=(secret,))
        log.warning("graph %s failed: %s (%s)", what, error.code, error.reason)
        raise error


def _str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value)
    return None


def classify(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    secrets: tuple[str, ...] = (),
) -> SendError:
    """The error class for a failed Graph call (see the module docstring)."""
    body = _json(content)
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        if status == 429:
            return RateLimited(
                f"HTTP {status} from the Graph API",
                code="rate_limited:http_429",
                retry_after=retry_after(headers),
            )
        if status >= 500:
            return TransientError(
                f"HTTP {status} from the Graph API", code=f"transient:http_{status}"
            )
        return PermanentError(
            f"HTTP {status} from the Graph API", code=f"graph_error:http_{status}"
        )
    code = _int(err.get("code"))
    subcode = _int(err.get("error_subcode"))
    numbers = f"{code}/{subcode}" if subcode is not None else f"{code}"
    message = _str(err.get("message")) or "no message"
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    message = _SECRET_PARAM.sub(r"\1***", message)
    trace = _str(err.get("fbtrace_id"))
    reason = f"{message} (Graph {numbers}" + (f", fbtrace_id {trace})" if trace else ")")
    reason = reason[:_REASON_MAX]
    pair = (code, subcode)

    if pair in _WINDOW:
        return WindowClosed(reason, code=f"window_closed:{numbers}")
    if code == 551 or pair in _RECIPIENT:
        return RecipientUnavailable(reason, code=f"recipient_unavailable:{numbers}")
    if code in _AUTH_CODES:
        return AuthError(reason, code=f"auth_failed:{numbers}")
    if code in _RATE_CODES or (code is not None and 80001 <= code <= 80099) or status == 429:
        return RateLimited(reason, code=f"rate_limited:{numbers}", retry_after=retry_after(headers))
    if code in _TRANSIENT_CODES or err.get("is_transient") is True:
        return TransientError(reason, code=f"transient:{numbers}")
    if code == 10 or (code is not None and 200 <= code <= 299):
        # The page or app lacks a permission: a human must fix the app's setup. Holding
        # messages for days until App Review is done would send stale replies, so they
        # fail now with the reason (the connector also reports BAD_CONFIG).
        return PermanentError(reason, code=f"permission_denied:{numbers}")
    if code == 100:
        return PermanentError(reason, code=f"invalid_parameter:{numbers}")
    if status >= 500:
        return TransientError(reason, code=f"transient:{numbers}")
    return PermanentError(reason, code=f"graph_error:{numbers}")


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from Retry-After or Graph's business-use-case usage header."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdecimal():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
        if when is not None:
            return max(0.0, when - (time.time() if now is None else now))
    usage = headers.get("x-business-use-case-usage") or headers.get("X-Business-Use-Case-Usage")
    minutes = 0
    data = _json(usage.encode()) if usage else None
    if isinstance(data, dict):
        for entries in data.values():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    minutes = max(minutes, _int(entry.get("estimated_time_to_regain_access")) or 0)
    return float(minutes * 60) if minutes > 0 else None
