"""Options of a Facebook Messenger channel (design.md section 7)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
)

from connectors.settings import ChannelSettings, Endpoints


def _id_text(value: object) -> object:
    # Ids written as TOML numbers (or read from the environment as numbers) are fine too.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Graph ids (pages, apps) are decimal strings.
GraphId = Annotated[str, BeforeValidator(_id_text), Field(pattern=r"^[0-9]{1,32}$")]


class PageSettings(BaseModel):
    """One Facebook Page the app serves, with its Page access token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: GraphId
    access_token: SecretStr

    @field_validator("access_token")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("the page access token is empty")
        return value


class FacebookSettings(ChannelSettings):
    type: Literal["facebook"]
    name: str | None = None
    # Signs every webhook POST (X-Hub-Signature-256).
    app_secret: SecretStr
    # Answers Meta's subscription check (GET hub.verify_token).
    verify_token: SecretStr
    # One app may serve several Pages: the webhook entry's page id picks the token.
    pages: Annotated[list[PageSettings], Field(min_length=1)]
    # Our app's id: echoes carrying it are our own sends, never stored twice.
    app_id: GraphId | None = None
    # The app has the Human Agent permission: replies may go out up to 7 days after the
    # customer's last message (MESSAGE_TAG + HUMAN_AGENT) instead of 24 hours.
    human_agent_tag: bool = False
    api_base: str = "https://graph.facebook.com/v25.0"
    # Sign every Graph call with appsecret_proof (needed when the app requires it).
    appsecret_proof: bool = True
    # Largest webhook body accepted, in bytes (Meta batches up to 1000 updates).
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    # The customer's name and picture are fetched again at most this often.
    profile_refresh_hours: Annotated[float, Field(gt=0)] = 24.0
    # typing_on / mark_seen go out at most this often per customer.
    typing_throttle_seconds: Annotated[float, Field(ge=0)] = 5.0
    # While the channel has BAD_CREDENTIALS, the page tokens are tried again this often.
    credentials_recheck_seconds: Annotated[float, Field(gt=0)] = 300.0

    def credential_endpoints(self) -> Endpoints:
        # Page tokens go to api_base, with proofs made with the app secret.
        tokens = tuple(f"pages[{i}].access_token" for i in range(len(self.pages)))
        return {"graph": ((self.api_base,), ("app_secret", *tokens))}

    @field_validator("api_base")
    @classmethod
    def _base(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not (value.startswith("https://") or value.startswith("http://")):
            raise ValueError(
                f"{value!r} is not an http(s) URL like https://graph.facebook.com/v25.0"
            )
        return value

    @field_validator("app_secret", "verify_token")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @field_validator("pages")
    @classmethod
    def _unique_pages(cls, pages: list[PageSettings]) -> list[PageSettings]:
        ids = [p.id for p in pages]
        if len(set(ids)) != len(ids):
            raise ValueError("a page id is listed twice")
        return pages

    def page(self, page_id: str) -> PageSettings | None:
        for page in self.pages:
            if page.id == page_id:
                return page
        return None
