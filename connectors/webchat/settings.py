"""Options of a webchat channel."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from connectors.settings import ChannelSettings


class WebchatSettings(ChannelSettings):
    type: Literal["webchat"]
    name: str | None = None
    # Origins (scheme://host[:port]) whose pages may open the socket. The gateway's own
    # origin (the demo page) is always allowed; "*" allows any.
    allowed_origins: list[str] = Field(default_factory=list)
    # When set, `identify` must carry hmac = HMAC-SHA256(identity_secret, user_id) in hex.
    identity_secret: SecretStr | None = None
    max_text_length: Annotated[int, Field(ge=1, le=100_000)] = 5000
    # Per socket: a burst of `rate_burst` messages, refilled at `rate_per_second`.
    rate_per_second: Annotated[float, Field(gt=0)] = 5.0
    rate_burst: Annotated[int, Field(ge=1)] = 20
    token_ttl_days: Annotated[int, Field(ge=1)] = 365
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
