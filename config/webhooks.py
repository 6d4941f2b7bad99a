"""Configuration of webhook endpoints ([[webhooks]]) and of their delivery."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from kernel import webhook_signing as signing
from kernel.durations import Duration
from kernel.netguard import NetGuard, UnsafeUrl, check_url

# Delays before attempts 1, 2, ...: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE = [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


class DeliverySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: Duration = 15.0
    # Requests in flight per endpoint.
    concurrency: Annotated[int, Field(ge=1, le=1024)] = 16
    retry_schedule: Annotated[list[Duration], Field(min_length=1, max_length=50)] = Field(
        default_factory=lambda: list(DEFAULT_SCHEDULE)
    )
    # An endpoint failing without a single success for this long is disabled (0: never).
    disable_after: Duration = 5 * 86400.0
    # After a rotation the previous secret keeps signing (beside the new one) this long.
    rotation_overlap: Duration = 86400.0
    # Webhook URLs resolving to private networks or loopback are refused unless allowed;
    # link-local (cloud metadata) never is.
    allow_private_networks: bool = False
    allow_loopback: bool = False

    def guard(self) -> NetGuard:
        """The addresses deliveries may reach (checked at every connection)."""
        return NetGuard(
            allow_private=self.allow_private_networks, allow_loopback=self.allow_loopback
        )


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] | None = None
    url: str
    events: list[str] = Field(default_factory=lambda: ["*"])
    secret: SecretStr
    description: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            check_url(value)
        except UnsafeUrl as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        signing.secret_key(value.get_secret_value())
        return value
