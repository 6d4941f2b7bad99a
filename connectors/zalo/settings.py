"""Options of a Zalo Official Account channel (design.md section 7, channels.md section 2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator

from connectors.settings import ChannelSettings, Endpoints


def _id_text(value: object) -> object:
    # Ids written as TOML numbers are fine too; they are kept as text (they exceed 2^53).
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Zalo ids (OA, app) are decimal strings.
ZaloId = Annotated[str, BeforeValidator(_id_text), Field(pattern=r"^[0-9]{1,32}$")]


def _http_base(value: str, example: str) -> str:
    value = value.strip().rstrip("/")
    if not (value.startswith("https://") or value.startswith("http://")):
        raise ValueError(f"{value!r} is not an http(s) URL like {example}")
    return value


class ZaloSettings(ChannelSettings):
    type: Literal["zalo"]
    name: str | None = None
    # The Official Account this channel serves: events for another OA are kept raw.
    oa_id: ZaloId
    # The Zalo app linked to the OA (webhook signature input, token refresh).
    app_id: ZaloId
    # The app's secret key: sent as the `secret_key` header when the tokens are refreshed.
    app_secret: SecretStr
    # The OA secret key shown when the OA is linked to the app: checks X-ZEvent-Signature.
    oa_secret_key: SecretStr
    # The OA access token and its refresh token (OAuth v4). Each refresh returns a new
    # pair; the gateway keeps the newest one (encrypted) in its store, so these are only
    # the starting pair: change them here after authorising the app again.
    access_token: SecretStr
    refresh_token: SecretStr
    api_base: str = "https://openapi.zalo.me"
    oauth_base: str = "https://oauth.zaloapp.com"
    # ZNS (template messages to a customer's phone, e.g. outside the 7-day window): its API
    # base, and the templates Zalo approved, by the name a `template` part gives
    # (`zns_templates = { order_confirmed = "123456" }`). Without templates, no ZNS.
    zns_api_base: str = "https://business.openapi.zalo.me"
    zns_templates: dict[
        Annotated[str, Field(min_length=1, max_length=128)], Annotated[ZaloId, Field()]
    ] = Field(default_factory=dict)
    # An event whose signed timestamp is further than this from now, either way, is
    # refused unstored (400 stale_event): a recorded event cannot be replayed later. Zalo
    # resends an event it got no 200 for, with its first timestamp, for about an hour: the
    # default takes every such resend (nothing is lost after an outage), and a resent
    # message is deduplicated by its msg_id anyway.
    max_event_age_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] = 3600.0
    # Largest webhook body accepted, in bytes (Zalo sends one event per request).
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 1024 * 1024
    # The access token is refreshed this long before it expires (it lives 25 hours).
    refresh_ahead_seconds: Annotated[float, Field(ge=0)] = 5 * 3600.0
    # The customer's name and avatar are fetched again at most this often.
    profile_refresh_hours: Annotated[float, Field(gt=0)] = 24.0
    # While the channel has BAD_CREDENTIALS, a token refresh is tried again this often.
    credentials_recheck_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Uploads larger than these go out as a text link instead (Zalo's reported limits).
    max_image_bytes: Annotated[int, Field(ge=1)] = 1024 * 1024
    max_file_bytes: Annotated[int, Field(ge=1)] = 5 * 1024 * 1024

    def credential_endpoints(self) -> Endpoints:
        # The access token goes to api_base, the refresh token and the app secret to
        # oauth_base; a pair refreshed since (kept in the store) is used while the
        # configured refresh token stays the same: both bases need all three again.
        return {
            "zalo": (
                (self.api_base, self.oauth_base, self.zns_api_base),
                ("access_token", "app_secret", "refresh_token"),
            )
        }

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str) -> str:
        return _http_base(value, "https://openapi.zalo.me")

    @field_validator("zns_api_base")
    @classmethod
    def _zns_api_base(cls, value: str) -> str:
        return _http_base(value, "https://business.openapi.zalo.me")

    @field_validator("oauth_base")
    @classmethod
    def _oauth_base(cls, value: str) -> str:
        return _http_base(value, "https://oauth.zaloapp.com")

    @field_validator("app_secret", "oa_secret_key", "access_token", "refresh_token")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value
