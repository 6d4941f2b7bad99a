"""The gateway: wires store, event bus, routing, pipeline, outbound worker, connectors
and the HTTP API together, and starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from typing import Any

import httpx
from aiohttp import web

from config.schema import Settings
from connectors.base import Connector, HealthState
from connectors.registry import BuildContext
from connectors.registry import build as build_connector
from connectors.webchat.connector import WebchatConnector
from gateway import __version__
from gateway.api import build_app
from gateway.api.auth import Authenticator
from gateway.api.schemas import ChannelInfo
from gateway.attachments import Attachments
from gateway.channels import ChannelAdmin
from gateway.events import EventBus
from gateway.metrics import Metrics
from gateway.outbound import OutboundWorker
from gateway.pipeline import Pipeline
from gateway.routing_service import RoutingService
from gateway.store.base import Store, open_store
from gateway.webhooks.service import Webhooks
from kernel.ids import AgentId, ChannelId
from kernel.models import Agent, ChannelType, Conversation
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
        self.connectors: dict[ChannelId, Connector] = {}
        self._config_channels = {c.id for c in settings.channels}
        self.started = False
        self.sse_clients = 0
        self.closing = asyncio.Event()
        self._store: Store | None = None
        self._stopped = False

    # the store exists only once started; everything below needs it
    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the gateway is not started")
        return self._store

    async def start(self) -> None:
        s = self.settings
        self._store = await open_store(
            s.store_url,
            on_events=self.bus.publish,
            routing=s.routing,
            channel_types={c.type for c in s.channels},
        )
        self.bus.start_at(await self.store.last_event_seq())
        self.auth = Authenticator(self.store, self.admin_token)
        self.api_limits = RateLimiter(s.server.api_rate_per_second, s.server.api_rate_burst)
        self.router = RoutingService(
            self.store,
            interval=s.routing.dispatch_interval,
            on_customer_messages=lambda: self.outbound.wake(),
        )
        self.attachments = Attachments(
            s.server.data_dir / "attachments",
            self.store,
            max_bytes=s.server.max_attachment_bytes,
            public_url=s.server.public_url or None,
        )
        self.pipeline = Pipeline(
            self.store, self.router, self.bus, self.channel_types, self.metrics, self.attachments
        )
        self.outbound = OutboundWorker(self.store, lambda: self.connectors, self.metrics)
        self.pipeline.on_connected = self.outbound.channel_recovered
        key = await asyncio.to_thread(
            load_secret_key, s.server.data_dir, os.environ.get("OMNIGW_SECRET_KEY")
        )
        box = SecretBox(key)
        self.webhooks = Webhooks(self.store, self.bus, s.webhook_delivery, box)
        await self.webhooks.configure(s.webhooks)
        for agent in s.agents:
            await self.store.put_agent(
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
        for channel in s.channels:
            self.connectors[ChannelId(channel.id)] = await self._launch(channel)
        self.channel_admin = ChannelAdmin(
            self.store,
            box,
            self.connectors,
            from_config=self._config_channels,
            launch=self._launch,
        )
        await self.channel_admin.load()  # channels added through the admin API
        await self.pipeline.drain()  # their first state changes are in the log before we serve
        self.metrics.gauge("omnigw_webchat_sockets", self._socket_count)
        self.metrics.gauge("omnigw_sse_clients", lambda: float(self.sse_clients))
        self.metrics.gauge("omnigw_event_log_last_id", lambda: float(self.bus.last_seq))
        await self.webhooks.start()
        self.outbound.start()
        self.router.start()  # whatever waited in the queue while we were down
        self.started = True

    async def _launch(self, settings: Any) -> Connector:
        connector = build_connector(settings, self._build_context)
        await connector.start(self.pipeline)
        return connector

    def _socket_count(self) -> float:
        return float(
            sum(c.hub.count() for c in self.connectors.values() if isinstance(c, WebchatConnector))
        )

    async def close_connections(self) -> None:
        """Close customers' sockets and end event streams before the server stops."""
        self.closing.set()
        for connector in self.connectors.values():
            if isinstance(connector, WebchatConnector):
                await connector.hub.close_all()

    async def stop(self) -> None:
        self.started = False
        if self._store is None or self._stopped:
            return
        self._stopped = True
        await self.router.stop()
        await self.webhooks.stop()
        await self.outbound.stop()
        for connector in self.connectors.values():
            with contextlib.suppress(Exception):
                await connector.aclose()
        await self.router.settle()
        await self.pipeline.drain()
        await self.store.close()

    # --- views -------------------------------------------------------------------------

    def channel_types(self) -> dict[ChannelId, ChannelType]:
        return {cid: c.type for cid, c in self.connectors.items()}

    def channel_infos(self) -> list[ChannelInfo]:
        return [
            ChannelInfo(
                id=cid,
                type=c.type.value,
                state=c.health.state.value,
                detail=c.health.detail,
                since=c.health.since,
                capabilities=sorted(c.capabilities),
                source="config" if cid in self._config_channels else "api",
            )
            for cid, c in self.connectors.items()
        ]

    def demo_channel(self) -> str | None:
        for cid, c in self.connectors.items():
            if c.type == ChannelType.WEBCHAT:
                return cid
        return None

    async def send_typing(self, conversation: Conversation, on: bool) -> None:
        connector = self.connectors.get(conversation.channel_id)
        if connector is None or connector.health.state != HealthState.CONNECTED:
            return
        recipient = await self.store.conversation_recipient(conversation.id)
        if recipient is not None:
            await connector.send_typing(recipient, on)

    async def mark_read(self, conversation: Conversation) -> None:
        connector = self.connectors.get(conversation.channel_id)
        if connector is None or connector.health.state != HealthState.CONNECTED:
            return
        recipient = await self.store.conversation_recipient(conversation.id)
        if recipient is not None:
            await connector.mark_read(recipient)

    def web_app(self) -> web.Application:
        app = build_app(self)
        return app
