"""Every channel type the gateway can run, named once: its settings model and how its
connector is built. The config file's [[channels]], the list of available types in its
error messages, and the gateway's start all read this table.

Adding a channel type = its folder under connectors/ and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union

import httpx
from pydantic import Field

from connectors.base import Connector
from connectors.email.settings import EmailSettings
from connectors.facebook.settings import FacebookSettings
from connectors.settings import ChannelSettings
from connectors.webchat.settings import WebchatSettings
from connectors.zalo.settings import ZaloSettings
from kernel.models import ChannelType
from kernel.ratelimit import Buckets, LocalBuckets
from kernel.secrets import Keyring


@dataclass
class BuildContext:
    """What the gateway gives a connector it builds."""

    # The keys for one purpose derived from the gateway's secret keys, newest first (see
    # kernel.secrets): the newest signs and seals, every one verifies and opens. Raises
    # kernel.secrets.KeyMissing when the gateway runs without a key.
    derive_key: Callable[[str], Keyring]
    data_dir: Path
    # A new HTTP client for one connector's provider API (the connector closes it in
    # aclose). Tests fake providers at its transport with respx.
    http_client: Callable[[], httpx.AsyncClient]
    # Rate limits' buckets: this process's, or shared by replicas (through Redis).
    buckets: Buckets = field(default_factory=LocalBuckets)
    extras: dict[str, Any] = field(default_factory=dict)


# Connectors are imported when one is built: reading the configuration needs only the
# settings models.


def _webchat(settings: Any, ctx: BuildContext) -> Connector:
    from connectors.webchat.connector import WebchatConnector

    return WebchatConnector(settings, ctx.derive_key(f"webchat-visitor:{settings.id}"), ctx.buckets)


def _facebook(settings: Any, ctx: BuildContext) -> Connector:
    from connectors.facebook.connector import FacebookConnector

    return FacebookConnector(settings, ctx.http_client())


@dataclass(frozen=True)
class SealedState:
    """A value a connector keeps with ``save_state(channel_id, key, {"sealed": ...})``,
    its ``sealed`` field sealed with ``SecretBox(derive_key(f"{purpose}:{channel_id}"))``.
    Declared here so that ``omnigw rotate-secrets`` seals it again under the newest key."""

    key: str
    purpose: str

    def keys(self, ctx_keys: Callable[[str], Keyring], channel_id: str) -> Keyring:
        return ctx_keys(f"{self.purpose}:{channel_id}")


ZALO_TOKENS = SealedState("tokens", "zalo-tokens")  # the refreshed access/refresh pair
EMAIL_OAUTH = SealedState("oauth", "email-oauth")  # an e-mail channel's OAuth token pair


def _email(settings: Any, ctx: BuildContext) -> Connector:
    from connectors.email.connector import EmailConnector

    return EmailConnector(
        settings,
        ctx.derive_key(f"email-thread:{settings.id}"),
        http_client=ctx.http_client,
        oauth_keys=EMAIL_OAUTH.keys(ctx.derive_key, settings.id) if settings.oauth else None,
    )


def _zalo(settings: Any, ctx: BuildContext) -> Connector:
    from connectors.zalo.connector import ZaloConnector

    return ZaloConnector(settings, ctx.http_client(), ZALO_TOKENS.keys(ctx.derive_key, settings.id))


@dataclass(frozen=True)
class ChannelKind:
    settings: type[ChannelSettings]
    build: Callable[[Any, BuildContext], Connector]
    # What its connectors keep sealed in their channel state.
    sealed_state: tuple[SealedState, ...] = ()


# In the order error messages list them.
CHANNELS: dict[ChannelType, ChannelKind] = {
    ChannelType.WEBCHAT: ChannelKind(WebchatSettings, _webchat),
    ChannelType.EMAIL: ChannelKind(EmailSettings, _email, (EMAIL_OAUTH,)),
    ChannelType.FACEBOOK: ChannelKind(FacebookSettings, _facebook),
    ChannelType.ZALO: ChannelKind(ZaloSettings, _zalo, (ZALO_TOKENS,)),
}

AVAILABLE = tuple(t.value for t in CHANNELS)


def settings_union() -> Any:
    """Any channel's settings, told apart by ``type`` (for pydantic)."""
    kinds = tuple(kind.settings for kind in CHANNELS.values())
    return Annotated[Union[kinds], Field(discriminator="type")]  # noqa: UP007


def sealed_state(type_: str) -> tuple[SealedState, ...]:
    """What connectors of a channel type keep sealed in their state (none for an unknown type)."""
    try:
        return CHANNELS[ChannelType(type_)].sealed_state
    except ValueError:
        return ()


def build(settings: ChannelSettings, ctx: BuildContext) -> Connector:
    return CHANNELS[ChannelType(settings.type)].build(settings, ctx)
