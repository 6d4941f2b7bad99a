"""Pure parsing for the webchat protocol: client frames and visitor tokens.

Nothing here does I/O; bad input becomes a :class:`FrameError` with a protocol code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from kernel import jsontext
from kernel.ids import VisitorId
from kernel.jsontext import JsonRefused
from kernel.secrets import Keyring
from kernel.text import clean_text

MAX_FRAME_BYTES = 64 * 1024
TOKEN_VERSION = "v1"  # noqa: S105 (a format tag, not a secret)


class FrameError(Exception):
    def __init__(self, code: str, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id


ClientId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MessageIdStr = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Short = Annotated[str, StringConstraints(max_length=256)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# Files a visitor uploaded (POST /webchat/{channel_id}/uploads), sent with a message.
AttachmentIdStr = Annotated[str, StringConstraints(pattern=r"^att_[0-9A-Z]{26}$")]
MAX_ATTACHMENTS = 10


class MessageFrame(_Frame):
    type: Literal["message"]
    client_id: ClientId
    text: str = ""
    # The answer picked from a choices part (its id); ``text`` is its title.
    choice_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    attachment_ids: Annotated[list[AttachmentIdStr], Field(max_length=MAX_ATTACHMENTS)] = Field(
        default_factory=list
    )


class HistoryFrame(_Frame):
    type: Literal["history"]
    before: MessageIdStr | None = None
    after: MessageIdStr | None = None
    limit: Annotated[int, Field(ge=1)] | None = None


class TypingFrame(_Frame):
    type: Literal["typing"]
    state: Literal["on", "off"]


class IdentifyFrame(_Frame):
    type: Literal["identify"]
    name: Short | None = None
    email: Short | None = None
    phone: Annotated[str, StringConstraints(max_length=64)] | None = None
    user_id: Short | None = None
    hmac: Annotated[str, StringConstraints(max_length=128)] | None = None


ClientFrame = Annotated[
    MessageFrame | HistoryFrame | TypingFrame | IdentifyFrame, Field(discriminator="type")
]
_frames: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
FRAME_TYPES = ("message", "history", "typing", "identify")
_TEXT = frozenset({"text"})


def parse_frame(data: str, *, max_text: int) -> ClientFrame:
    """One client frame, validated; raises FrameError with the protocol's error code."""
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError("too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        raw: Any = jsontext.loads(data)
    except JsonRefused as exc:
        raise FrameError("bad_json", f"the frame is not JSON: {exc.reason}") from None
    if not isinstance(raw, dict):
        raise FrameError("bad_frame", "a frame is a JSON object with a 'type'")
    kind = raw.get("type")
    if kind not in FRAME_TYPES:
        raise FrameError(
            "unknown_type",
            f"unknown frame type {kind!r}; expected one of {', '.join(FRAME_TYPES)}",
        )
    client_id = raw.get("client_id") if isinstance(raw.get("client_id"), str) else None
    # A message's text loses its control characters below; anywhere else NUL is refused.
    if (refused := jsontext.refused_text(data, raw, nul_allowed=_TEXT)) is not None:
        where, problem = refused
        raise FrameError(
            "bad_frame",
            f"{kind}: {where}: {problem}",
            client_id=None if where.startswith("client_id") else client_id,
        )
    try:
        frame = _frames.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "frame"
        raise FrameError(
            "bad_frame", f"{kind}: {where}: {first['msg']}", client_id=client_id
        ) from None
    if isinstance(frame, MessageFrame):
        text = clean_text(frame.text).strip()
        if not text and not frame.attachment_ids:
            raise FrameError("empty_text", "the message has no text", client_id=frame.client_id)
        if len(text) > max_text:
            raise FrameError(
                "text_too_long",
                f"messages are limited to {max_text} characters",
                client_id=frame.client_id,
            )
        frame = frame.model_copy(update={"text": text})
    return frame


# --- visitor tokens -------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class VisitorToken:
    visitor_id: VisitorId
    channel_id: str
    issued_at: int


def sign_token(
    key: bytes | Keyring, visitor_id: str, channel_id: str, now: float | None = None
) -> str:
    payload = _b64(
        json.dumps(
            {"v": visitor_id, "c": channel_id, "iat": int(time.time() if now is None else now)},
            separators=(",", ":"),
        ).encode()
    )
    body = f"{TOKEN_VERSION}.{payload}"
    sig = hmac.new(Keyring.of(key).newest, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(sig)}"


def verify_token(
    key: bytes | Keyring,
    token: str,
    channel_id: str,
    ttl_seconds: float,
    now: float | None = None,
) -> VisitorToken | None:
    """The visitor a token names, or None when it is forged, expired or for another channel.
    Signed with any of the keys (the newest signs; older ones verify until removed)."""
    if len(token) > 512:
        return None
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_VERSION:
        return None
    body = f"{parts[0]}.{parts[1]}"
    try:
        given = _unb64(parts[2])
        signed = False
        for one in Keyring.of(key):
            expected = hmac.new(one, body.encode(), hashlib.sha256).digest()
            signed |= hmac.compare_digest(expected, given)
        if not signed:
            return None
        claims = json.loads(_unb64(parts[1]))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict):
        return None
    visitor, channel, iat = claims.get("v"), claims.get("c"), claims.get("iat")
    if not isinstance(visitor, str) or not isinstance(iat, int) or channel != channel_id:
        return None
    current = time.time() if now is None else now
    if iat > current + 300 or current - iat > ttl_seconds:
        return None
    return VisitorToken(VisitorId(visitor), channel, iat)


# --- links to files -------------------------------------------------------------------


_EXPIRES = re.compile(r"[0-9]{1,12}")


def _file_body(channel_id: str, attachment_id: str, expires: int) -> bytes:
    return f"file.{channel_id}.{attachment_id}.{expires}".encode()


def sign_file(key: bytes | Keyring, channel_id: str, attachment_id: str, expires: int) -> str:
    """The signature of a link to a file, valid until ``expires`` (epoch seconds)."""
    body = _file_body(channel_id, attachment_id, expires)
    return _b64(hmac.new(Keyring.of(key).newest, body, hashlib.sha256).digest())


def file_link_ok(
    key: bytes | Keyring,
    channel_id: str,
    attachment_id: str,
    expires: str,
    signature: str,
    now: float | None = None,
) -> bool:
    """A link to a file made by :func:`sign_file`, with any of the keys, not expired."""
    if not _EXPIRES.fullmatch(expires) or len(signature) > 64:
        return False
    if int(expires) < (time.time() if now is None else now):
        return False
    body = _file_body(channel_id, attachment_id, int(expires))
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        return False
    ok = False
    for one in Keyring.of(key):
        ok |= hmac.compare_digest(hmac.new(one, body, hashlib.sha256).digest(), given)
    return ok


def identity_hmac_ok(secret: bytes, user_id: str, given: str | None) -> bool:
    """HMAC-SHA256(identity_secret, user_id) in hex, compared in constant time."""
    if not given:
        return False
    expected = hmac.new(secret, user_id.encode(), hashlib.sha256).hexdigest()
    # As bytes: any text may be given, and compare_digest takes ASCII strings only.
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())
