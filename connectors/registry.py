"""Every channel type the gateway can run: its settings model and how to build it.

Adding a channel type = its folder under connectors/, one entry here, and its settings
model in the union of config/schema.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from connectors.base import Connector
from connectors.email.connector import EmailConnector
from connectors.email.settings import EmailSettings
from connectors.facebook.connector import FacebookConnector
from connectors.facebook.settings import FacebookSettings
from connectors.webchat.connector import WebchatConnector
from connectors.webchat.settings import WebchatSettings
from connectors.zalo.connector import ZaloConnector
from connectors.zalo.settings import ZaloSettings


@dataclass
class BuildContext:
    """What the gateway gives a connector it builds."""

    # Derives a key for one purpose from the gateway's secret key (see gateway.secrets).
    derive_key: Callable[[str], bytes]
    data_dir: Path
    # A new HTTP client for one connector's provider API (the connector closes it in
    # aclose). Tests fake providers at its transport with respx.
    http_client: Callable[[], httpx.AsyncClient]
    extras: dict[str, Any] = field(default_factory=dict)


def _webchat(settings: Any, ctx: BuildContext) -> Connector:
    assert isinstance(settings, WebchatSettings)
    return WebchatConnector(settings, ctx.derive_key(f"webchat-visitor:{settings.id}"))


def _email(settings: Any, ctx: BuildContext) -> Connector:
    assert isinstance(settings, EmailSettings)
    return EmailConnector(
        settings,
        ctx.derive_key(f"email-thread:{settings.id}"),
        http_client=ctx.http_client,
    )


def _facebook(settings: Any, ctx: BuildContext) -> Connector:
    assert isinstance(settings, FacebookSettings)
    return FacebookConnector(settings, ctx.http_client())


def _zalo(settings: Any, ctx: BuildContext) -> Connector:
    assert isinstance(settings, ZaloSettings)
    return ZaloConnector(settings, ctx.http_client(), ctx.derive_key(f"zalo-tokens:{settings.id}"))


BUILDERS: dict[str, Callable[[Any, BuildContext], Connector]] = {
    "email": _email,
    "facebook": _facebook,
    "webchat": _webchat,
    "zalo": _zalo,
}


def build(settings: Any, ctx: BuildContext) -> Connector:
    return BUILDERS[settings.type](settings, ctx)
