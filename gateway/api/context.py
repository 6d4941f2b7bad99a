"""What the HTTP API works with: handlers get this, never the whole gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from config.schema import Settings
from gateway.api.auth import Authenticator
from gateway.api.logins import LoginGuard
from gateway.attachments import Attachments
from gateway.channels import ChannelAdmin, LiveChannels
from gateway.commands import Commands
from gateway.domain.assignments import Assignments
from gateway.events import EventBus
from gateway.metrics import Metrics
from gateway.store.protocols import Store
from gateway.surveys import Surveys
from gateway.webhooks.service import Webhooks
from kernel.secrets import Keyring


class Limits(Protocol):
    """API rate limits per token (gateway.replicas.limits)."""

    rate: float
    burst: int

    async def wait(self, key: str) -> float:
        """0.0 when a request may go now; otherwise the seconds to wait."""
        ...


@dataclass
class Lifecycle:
    """Whether the gateway serves, and the long-lived answers (event streams) it has open."""

    started: bool = False
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    streams: int = 0


@dataclass
class ApiContext:
    settings: Settings
    store: Store  # reads
    commands: Commands  # changes
    assignments: Assignments  # the queue's view
    channels: LiveChannels
    channel_admin: ChannelAdmin
    webhooks: Webhooks
    bus: EventBus
    auth: Authenticator
    logins: LoginGuard  # authenticates requests, throttling failed logins
    limits: Limits
    metrics: Metrics
    attachments: Attachments
    lifecycle: Lifecycle
    surveys: Surveys
    # The console's session cookies are sealed with these (empty: a key of this process).
    console_keys: Keyring = field(default_factory=lambda: Keyring(()))
    # Replicas: the state of their Redis link (None: not used).
    redis_state: Callable[[], str | None] = lambda: None
