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


@dataclass
class BuildContext:
    """What the gateway gives a connector it builds."""

    # Derives a key for one purpose from the gateway's secret key (see kernel.secrets).
    derive_key: Callable[[str], bytes]
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


def _email(settings: Any, ctx: BuildContext) -> Connector:
    from connectors.email.connector import EmailConnector

    return EmailConnector(
        settings,
        ctx.derive_key(f"email-thread:{settings.id}"),
        http_client=ctx.http_client,
    )


def _facebook(settings: Any, ctx: BuildContext) -> Connector:
    from connectors.facebook.connector import FacebookConnector

    return FacebookConnector(settings, ctx.http_client())


def _zalo(settings: Any, ctx: BuildContext) -> Connector:
    from connectors.zalo.connector import ZaloConnector

    return ZaloConnector(settings, ctx.http_client(), ctx.derive_key(f"zalo-tokens:{settings.id}"))


@dataclass(frozen=True)
class ChannelKind:
    settings: type[ChannelSettings]
    build: Callable[[Any, BuildContext], Connector]


# In the order error messages list them.
CHANNELS: dict[ChannelType, ChannelKind] = {
    ChannelType.WEBCHAT: ChannelKind(WebchatSettings, _webchat),
    ChannelType.EMAIL: ChannelKind(EmailSettings, _email),
    ChannelType.FACEBOOK: ChannelKind(FacebookSettings, _facebook),
    ChannelType.ZALO: ChannelKind(ZaloSettings, _zalo),
}

AVAILABLE = tuple(t.value for t in CHANNELS)


def settings_union() -> Any:
    """Any channel's settings, told apart by ``type`` (for pydantic)."""
    kinds = tuple(kind.settings for kind in CHANNELS.values())
    return Annotated[Union[kinds], Field(discriminator="type")]  # noqa: UP007


def build(settings: ChannelSettings, ctx: BuildContext) -> Connector:
    return CHANNELS[ChannelType(settings.type)].build(settings, ctx)
