"""Options of a webchat channel."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from connectors.settings import ChannelSettings
from kernel.durations import Duration


class WebchatSettings(ChannelSettings):
    type: Literal["webchat"]
    name: str | None = None
    # Origins (scheme://host[:port]) whose pages may open the socket. The gateway's own
    # origin (the demo page) is always allowed; "*" allows any.
    allowed_origins: list[str] = Field(default_factory=list)
    # When set, `identify` must carry hmac = HMAC-SHA256(identity_secret, user_id) in hex.
    identity_secret: SecretStr | None = None
    max_text_length: Annotated[int, Field(ge=1, le=100_000)] = 5000
    # Limits (shared by replicas through Redis; per process without it). Each is a burst,
    # refilled at a steady rate; beyond it a frame gets a `rate_limited` error frame.
    # Per visitor, over all their sockets and reconnects: messages ...
    rate_per_second: Annotated[float, Field(gt=0)] = 5.0
    rate_burst: Annotated[int, Field(ge=1)] = 20
    # ... and frames of every type (a connect counts as one; a history page of up to 50
    # messages as one, larger pages as one per 50).
    frames_per_second: Annotated[float, Field(gt=0)] = 10.0
    frames_burst: Annotated[int, Field(ge=1)] = 60
    # Per client address (every visitor behind one office or carrier address together):
    # frames of every type, connects included ...
    address_frames_per_second: Annotated[float, Field(gt=0)] = 200.0
    address_frames_burst: Annotated[int, Field(ge=1)] = 1000
    # ... new conversations (and contacts of new visitors), `address_conversations` per
    # `address_conversations_window` ...
    address_conversations: Annotated[int, Field(ge=1)] = 100
    address_conversations_window: Annotated[Duration, Field(gt=0)] = 600.0
    # ... and sockets open at once (per process). Beyond it, or beyond `max_sockets` open
    # on this channel in the process, the handshake is refused (429 / 503).
    address_sockets: Annotated[int, Field(ge=1)] = 500
    max_sockets: Annotated[int, Field(ge=1)] = 10_000
    token_ttl_days: Annotated[int, Field(ge=1)] = 365
    # Files visitors send (POST /webchat/{id}/uploads): the largest, in bytes, and the
    # types taken ("type/*" for a family). Uploads count against the message limits.
    max_upload_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024 * 1024)] = 10 * 1024 * 1024
    upload_types: list[str] = Field(
        default_factory=lambda: [
            "image/jpeg",
            "image/png",
            "image/gif",
            "image/webp",
            "application/pdf",
        ]
    )
    # Visitors see files through signed links that work this long after they are shown.
    file_link_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 24
    history_limit_max: Annotated[int, Field(ge=1, le=1000)] = 200

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        out = []
        for origin in value:
            origin = origin.strip().rstrip("/")
            if origin != "*" and not (
                origin.startswith("http://") or origin.startswith("https://")
            ):
                raise ValueError(f"{origin!r} is not an origin like https://shop.example")
            out.append(origin.lower())
        return out
