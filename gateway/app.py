"""The gateway: wires the store, the domain, the services that run it (ingest pipeline,
queue runner, send path, webhook delivery), the connectors and the HTTP API together,
and starts and stops them in order."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from typing import Any

import httpx
from aiohttp import web

from config.schema import Settings
from connectors.base import Connector
from connectors.registry import BuildContext
from connectors.registry import build as build_connector
from gateway import __version__
from gateway.api import build_app
from gateway.api.auth import Authenticator
from gateway.api.context import ApiContext, Lifecycle
from gateway.attachments import Attachments
from gateway.channels import ChannelAdmin, LiveChannels
from gateway.commands import Commands
from gateway.domain.assignments import Assignments
from gateway.domain.contacts import Contacts
from gateway.domain.inbox import Inbox
from gateway.domain.outbox import Outbox
from gateway.domain.state import RoutingState
from gateway.events import EventBus
from gateway.metrics import Metrics
from gateway.outbound import OutboundWorker
from gateway.pipeline import Pipeline
from gateway.queue_runner import QueueRunner
from gateway.store import Store, open_store
from gateway.webhooks.service import Webhooks
from kernel.ids import AgentId, ChannelId
from kernel.models import Agent
from kernel.ratelimit import RateLimiter
from kernel.secrets import SecretBox, derive, load_secret_key

log = logging.getLogger(__name__)


def provider_client() -> httpx.AsyncClient:
    """The HTTP client a connector calls its provider's API with."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(15.0, connect=5.0),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        headers={"User-Agent": f"omnichannel-gateway/{__version__}"},
    )


class Gateway:
    def __init__(self, settings: Settings, *, admin_token: str | None = None) -> None:
        self.settings = settings
        self.admin_token = admin_token or os.environ.get("OMNIGW_ADMIN_TOKEN") or ""
        self.admin_token_generated = not self.admin_token
        if not self.admin_token:
            self.admin_token = "ogw_admin_" + secrets.token_urlsafe(24)
        self.metrics = Metrics()
        self.bus = EventBus(settings.events.ring_size)
        self.lifecycle = Lifecycle()
        self.channels = LiveChannels(settings.channels, self._launch)
        self.connectors: dict[ChannelId, Connector] = self.channels.connectors
        self._store: Store | None = None
        self._stopped = False

    # the store exists only once started; everything below needs it
    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the gateway is not started")
        return self._store

    @property
    def started(self) -> bool:
        return self.lifecycle.started

    async def start(self) -> None:
        s = self.settings
        self._store = store = await open_store(s.store_url, on_events=self.bus.publish)
        self.bus.start_at(await store.events.last_seq())
        routing = RoutingState(s.routing, {c.type for c in s.channels})
        self.inbox = Inbox(store, routing)
        self.outbox = Outbox(store)
        self.assignments = Assignments(store, routing)
        self.contacts = Contacts(store)
        self.auth = Authenticator(store.tokens, self.admin_token)
        self.api_limits = RateLimiter(s.server.api_rate_per_second, s.server.api_rate_burst)
        self.outbound = OutboundWorker(
            store.outbound, self.outbox, lambda: self.channels.connectors, self.metrics
        )
        self.queue = QueueRunner(
            self.assignments,
            interval=s.routing.dispatch_interval,
            on_customer_messages=self.outbound.wake,
        )
        self.commands = Commands(
            store,
            self.assignments,
            self.outbox,
            self.contacts,
            self.channels,
            wake_queue=self.queue.kick,
            wake_sender=self.outbound.wake,
        )
        self.attachments = Attachments(
            s.server.data_dir / "attachments",
            store.attachments,
            max_bytes=s.server.max_attachment_bytes,
            public_url=s.server.public_url or None,
        )
        self.pipeline = Pipeline(
            store,
            self.inbox,
            self.outbox,
            self.queue,
            self.bus,
            self.channels.types,
            self.metrics,
            self.attachments,
        )
        self.pipeline.on_connected = self.outbound.channel_recovered
        key = await asyncio.to_thread(
            load_secret_key, s.server.data_dir, os.environ.get("OMNIGW_SECRET_KEY")
        )
        box = SecretBox(key)
        self.webhooks = Webhooks(store, self.bus, s.webhook_delivery, box)
        await self.webhooks.configure(s.webhooks)
        for agent in s.agents:
            await self.assignments.put_agent(
                Agent(
                    id=AgentId(agent.id),
                    name=agent.name,
                    skills=agent.skills,
                    languages=agent.languages,
                    capacity=agent.capacity,
                    presence=agent.presence,
                ),
                keep_presence=True,
            )
        self._build_context = BuildContext(
            derive_key=lambda purpose: derive(key, purpose),
            data_dir=s.server.data_dir,
            http_client=provider_client,
        )
        await self.channels.start_configured()
        self.channel_admin = ChannelAdmin(store.channels, box, self.channels)
        await self.channel_admin.load()  # channels added through the admin API
        await self.pipeline.drain()  # their first state changes are in the log before we serve
        self.metrics.gauge("omnigw_webchat_sockets", lambda: float(self.channels.sockets()))
        self.metrics.gauge("omnigw_sse_clients", lambda: float(self.lifecycle.streams))
        self.metrics.gauge("omnigw_event_log_last_id", lambda: float(self.bus.last_seq))
        await self.webhooks.start()
        self.outbound.start()
        self.queue.start()  # whatever waited in the queue while we were down
        self.lifecycle.started = True

    async def _launch(self, settings: Any) -> Connector:
        connector = build_connector(settings, self._build_context)
        await connector.start(self.pipeline)
        return connector

    async def close_connections(self) -> None:
        """Close customers' sockets and end event streams before the server stops."""
        self.lifecycle.closing.set()
        await self.channels.close_sockets()

    async def stop(self) -> None:
        self.lifecycle.started = False
        if self._store is None or self._stopped:
            return
        self._stopped = True
        await self.queue.stop()
        await self.webhooks.stop()
        await self.outbound.stop()
        await self.channels.aclose()
        await self.queue.settle()
        await self.pipeline.drain()
        await self.store.close()

    def web_app(self) -> web.Application:
        return build_app(
            ApiContext(
                settings=self.settings,
                store=self.store,
                commands=self.commands,
                assignments=self.assignments,
                channels=self.channels,
                channel_admin=self.channel_admin,
                webhooks=self.webhooks,
                bus=self.bus,
                auth=self.auth,
                limits=self.api_limits,
                metrics=self.metrics,
                attachments=self.attachments,
                lifecycle=self.lifecycle,
            )
        )
