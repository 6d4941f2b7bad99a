"""Configuration of bots ([[bots]]): who answers a new conversation first, and when it
goes to humans."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from kernel import webhook_signing as signing
from kernel.durations import Duration
from kernel.models import ChannelIdStr
from kernel.netguard import UnsafeUrl, check_url

# What a customer writes to ask for a person (compared without diacritics or case).
DEFAULT_HANDOVER_PHRASES = (
    "gặp nhân viên",
    "gặp người thật",
    "tư vấn viên",
    "nhân viên tư vấn",
    "agent",
    "human",
    "real person",
)


class BotSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    # Where the conversation's events are delivered (Standard Webhooks, signed with
    # `secret`).
    url: str
    secret: SecretStr
    # New conversations on these channels go to the bot first.
    channels: list[ChannelIdStr] = Field(default_factory=list)
    # ... and those the routing rules named here classify (a rule's `name`).
    routing_rules: list[str] = Field(default_factory=list)
    # A customer's message the bot has not answered within this long goes to humans.
    timeout: Annotated[Duration, Field(gt=0)] = 30.0
    # Delays before each delivery attempt; when they are used up the delivery is dead
    # and the conversation goes to humans.
    retry_schedule: Annotated[list[Duration], Field(min_length=1, max_length=10)] = Field(
        default_factory=lambda: [0.0, 2.0, 10.0]
    )
    handover_phrases: list[str] = Field(default_factory=lambda: list(DEFAULT_HANDOVER_PHRASES))
    # Messenger: the bot's app id, to pass thread control to (handover protocol).
    facebook_app_id: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            check_url(value)
        except UnsafeUrl as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("facebook_app_id")
    @classmethod
    def _app_id(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        signing.secret_key(value.get_secret_value())
        return value
