"""Zalo OpenAPI and OAuth v4 over the injected httpx client: the connector's only I/O.

Zalo answers application errors with HTTP 200 and a JSON body ``{"error": <code>,
"message": ...}`` (channels.md 2.3), so every answer's ``error`` is checked. Codes become
:mod:`connectors.errors` classes here, at the edge (channels.md 2.8)::

    token invalid / expired   -216, -220                         TokenRejected (refresh, retry once)
    rate limited / quota      -32, -211, -218, HTTP 429          RateLimited
    night ban                 -234                               RateLimited until 06:00 (UTC+7)
    upload expired            -100                               TransientError (re-upload)
    window closed             -230, -232                         WindowClosed
    recipient unavailable     -213, -217, -227, -244             RecipientUnavailable
    configuration             -204, -205, -209, -212, -223, -224, -242   PermanentError (config:)
    anything else             -201, -233, -240, ...              PermanentError
    network, timeouts, 5xx                                       TransientError

Every error's ``code`` keeps Zalo's number (``window_closed:-230``) and its reason Zalo's
own message. The access token travels as the bare ``access_token`` header, never in a URL;
tokens never appear in a raised error or a log line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
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

SEND_CS_PATH = "/v3.0/oa/message/cs"
# ZNS (Zalo Notification Service): template messages to a phone number, on their own base.
ZNS_BASE = "https://business.openapi.zalo.me"
SEND_ZNS_PATH = "/message/template"
USER_DETAIL_PATH = "/v3.0/oa/user/detail"
GET_OA_PATH = "/v2.0/oa/getoa"
UPLOAD_PATHS = {
    "image": "/v2.0/oa/upload/image",
    "gif": "/v2.0/oa/upload/gif",
    "file": "/v2.0/oa/upload/file",
}
TOKEN_PATH = "/v4/oa/access_token"  # noqa: S105 (a path, not a secret)
DEFAULT_EXPIRES_IN = 3600  # when Zalo's answer does not say
_REASON_MAX = 500

TOKEN_CODES = {-216, -220}
RATE_CODES = {-32, -211, -218}
NIGHT_CODE = -234
REUPLOAD_CODE = -100
WINDOW_CODES = {-230, -232}
RECIPIENT_CODES = {-213, -217, -227, -244}
CONFIG_CODES = {-204, -205, -209, -212, -223, -224, -242}
VIETNAM = timezone(timedelta(hours=7))


class TokenRejected(AuthError):
    """Zalo refused the access token (-216 invalid, -220 expired or removed): refreshing
    the token may cure it."""

    code = "token_rejected"


@dataclass(frozen=True)
class TokenPair:
    access_token: SecretStr
    refresh_token: SecretStr
    expires_in: int

    def __repr__(self) -> str:
        return f"TokenPair(expires_in={self.expires_in})"


@dataclass(frozen=True)
class Profile:
    name: str | None
    avatar_url: str | None
    # The phone of `shared_info`, once the user has shared it with the OA.
    phone: str | None = None


class ZaloClient:
    """Zalo calls for one channel, on an httpx client the connector owns."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_base: str,
        oauth_base: str,
        *,
        zns_base: str = ZNS_BASE,
        now: Any = None,
    ) -> None:
        self._http = http
        self.api_base = api_base.rstrip("/")
        self.oauth_base = oauth_base.rstrip("/")
        self.zns_base = zns_base.rstrip("/")
        self._now = now or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"ZaloClient({self.api_base!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- OpenAPI ------------------------------------------------------------------------

    async def send_cs(self, token: SecretStr, body: Mapping[str, Any]) -> str | None:
        """POST /v3.0/oa/message/cs; returns the message_id Zalo gave the message."""
        data = await self._call("send", "POST", SEND_CS_PATH, token, json_body=body)
        return _id(data.get("message_id"))

    async def send_zns(self, token: SecretStr, body: Mapping[str, Any]) -> str | None:
        """POST /message/template on the ZNS API; returns the msg_id Zalo gave it (its
        delivery news, ``user_received_message``, names it)."""
        data = await self._call(
            "send ZNS", "POST", SEND_ZNS_PATH, token, json_body=body, base=self.zns_base
        )
        return _id(data.get("msg_id"))

    async def upload(
        self, token: SecretStr, kind: str, content: bytes, *, name: str, mime: str
    ) -> str:
        """Upload an image, gif or file; returns its attachment_id (image, gif) or its
        token (file)."""
        data = await self._call(
            f"upload {kind}",
            "POST",
            UPLOAD_PATHS[kind],
            token,
            files={"file": (name, content, mime)},
        )
        key = "token" if kind == "file" else "attachment_id"
        value = _id(data.get(key))
        if value is None:
            raise TransientError(f"Zalo's upload answer has no {key}", code="upload_incomplete")
        return value

    async def profile(self, token: SecretStr, user_id: str) -> Profile:
        """The user's display name and avatar (GET /v3.0/oa/user/detail?data={...})."""
        params = {"data": json.dumps({"user_id": user_id}, separators=(",", ":"))}
        data = await self._call("profile", "GET", USER_DETAIL_PATH, token, params=params)
        name = _text(data.get("display_name"))
        found = data.get("avatars")
        avatars: dict[str, Any] = found if isinstance(found, dict) else {}
        avatar = _text(data.get("avatar")) or _text(avatars.get("240")) or _text(avatars.get("120"))
        if avatar and not avatar.startswith(("https://", "http://")):
            avatar = None
        shared = data.get("shared_info")
        phone = _text(shared.get("phone")) if isinstance(shared, dict) else None
        return Profile(
            name=name[:200] if name else None,
            avatar_url=avatar,
            phone=phone[:64] if phone else None,
        )

    async def check_token(self, token: SecretStr) -> None:
        """A cheap call that fails with TokenRejected when the token no longer works."""
        await self._call("check_token", "GET", GET_OA_PATH, token)

    async def _call(
        self,
        what: str,
        method: str,
        path: str,
        token: SecretStr,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        base: str | None = None,
    ) -> dict[str, Any]:
        secret = token.get_secret_value()
        resp = await reach(
            "Zalo",
            self._http.request(
                method,
                (base or self.api_base) + path,
                params=params,
                json=json_body,
                files=files,
                headers={"access_token": secret},
            ),
        )
        body = _json(resp.content)
        error = classify(resp.status_code, body, now=self._now(), secrets=(secret,))
        if error is not None:
            log.warning("zalo %s failed: %s (%s)", what, error.code, error.reason)
            raise error
        data = body.get("data") if isinstance(body, dict) else None
        return data if isinstance(data, dict) else {}

    # --- OAuth v4 -----------------------------------------------------------------------

    async def refresh(
        self, app_id: str, app_secret: SecretStr, refresh_token: SecretStr
    ) -> TokenPair:
        """Trade the refresh token for a new pair (the old refresh token is spent).

        AuthError when Zalo refuses it (a human must authorise the app again);
        TransientError when Zalo could not be asked.
        """
        secrets = (app_secret.get_secret_value(), refresh_token.get_secret_value())
        resp = await reach(
            "Zalo OAuth",
            self._http.post(
                self.oauth_base + TOKEN_PATH,
                data={
                    "app_id": app_id,
                    "grant_type": "refresh_token",
                    "refresh_token": refresh_token.get_secret_value(),
                },
                headers={"secret_key": app_secret.get_secret_value()},
            ),
        )
        body = _json(resp.content)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientError(
                f"HTTP {resp.status_code} from Zalo OAuth",
                code=f"transient:http_{resp.status_code}",
            )
        answer = body if isinstance(body, dict) else {}
        access = _text(answer.get("access_token"))
        refresh = _text(answer.get("refresh_token"))
        if access and refresh:
            return TokenPair(
                access_token=SecretStr(access),
                refresh_token=SecretStr(refresh),
                expires_in=_seconds(answer.get("expires_in")) or DEFAULT_EXPIRES_IN,
            )
        number = _int(answer.get("error"))
        words = [
            _text(answer.get(k))
            for k in ("error_name", "error_reason", "error_description", "message")
        ]
        message = _redact("; ".join(w for w in words if w) or "no token in the answer", secrets)
        label = f"Zalo OAuth {number}" if number is not None else f"HTTP {resp.status_code}"
        log.warning("zalo token refresh refused: %s (%s)", label, message)
        raise AuthError(
            f"the refresh token was refused: {message} ({label})"[:_REASON_MAX],
            code=f"refresh_failed:{number if number is not None else resp.status_code}",
        )


def classify(
    status: int, body: Any, *, now: datetime | None = None, secrets: tuple[str, ...] = ()
) -> SendError | None:
    """The error for one OpenAPI answer, or None when it is a success."""
    number = _int(body.get("error")) if isinstance(body, dict) else None
    if number is None or number == 0:
        if 200 <= status < 300 and isinstance(body, dict):
            return None
        if status == 429:
            return RateLimited(f"HTTP {status} from Zalo", code="rate_limited:http_429")
        if status >= 500:
            return TransientError(f"HTTP {status} from Zalo", code=f"transient:http_{status}")
        if 200 <= status < 300:
            return TransientError("Zalo's answer is not JSON", code="transient:bad_answer")
        return PermanentError(f"HTTP {status} from Zalo", code=f"zalo_error:http_{status}")
    message = _text(body.get("message")) if isinstance(body, dict) else ""
    reason = f"{_redact(message or 'no message', secrets)} (Zalo {number})"[:_REASON_MAX]
    if number in TOKEN_CODES:
        return TokenRejected(reason, code=f"token_rejected:{number}")
    if number in RATE_CODES:
        return RateLimited(reason, code=f"rate_limited:{number}")
    if number == NIGHT_CODE:
        return RateLimited(
            reason, code=f"night_ban:{number}", retry_after=_until_morning(now or datetime.now(UTC))
        )
    if number == REUPLOAD_CODE:
        return TransientError(reason, code=f"upload_expired:{number}")
    if number in WINDOW_CODES:
        return WindowClosed(reason, code=f"window_closed:{number}")
    if number in RECIPIENT_CODES:
        return RecipientUnavailable(reason, code=f"recipient_unavailable:{number}")
    if number in CONFIG_CODES:
        return PermanentError(reason, code=f"config:{number}")
    if status >= 500:
        return TransientError(reason, code=f"transient:{number}")
    return PermanentError(reason, code=f"zalo_error:{number}")


def _until_morning(now: datetime) -> float:
    """Seconds until 06:00 in Vietnam, when Zalo's night ban (22:00-06:00) ends."""
    local = now.astimezone(VIETNAM)
    morning = local.replace(hour=6, minute=0, second=0, microsecond=0)
    if morning <= local:
        morning += timedelta(days=1)
    return (morning - local).total_seconds()


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdecimal() and len(text) < 20:
            return int(text)
    return None


def _seconds(value: Any) -> int | None:
    """expires_in comes as a string ("90000") or a number."""
    number = _int(value)
    return number if number is not None and number > 0 else None
