"""The gateway: wires the store, the domain, the services that run it (ingest pipeline,
queue runner, send path, webhook delivery), the connectors and the HTTP API together,
and starts and stops them in order."""

from __future__ import annotations

import json
import logging
import os
import secrets
from typing import Any

import httpx
from aiohttp import web

from config import ConfigError, Problem
from config.schema import TOKEN_MIN_LENGTH, Settings
from connectors.base import Connector, SocketConnector
from connectors.registry import BuildContext
from connectors.registry import build as build_connector
from gateway import __version__
from gateway.api import build_app
from gateway.api.auth import CACHE_SECONDS, Authenticator
from gateway.api.context import ApiContext, Lifecycle, Limits
from gateway.api.logins import LoginGuard
from gateway.api.spec import API
from gateway.attachments import Attachments
from gateway.bots import Bots
from gateway.channels import ChannelAdmin, LiveChannels, Unopened, locked_channel
from gateway.commands import Commands
from gateway.console import install as install_console
from gateway.domain.assignments import Assignments
from gateway.domain.bots import BotRules
from gateway.domain.clocks import Clocks
from gateway.domain.contacts import Contacts
from gateway.domain.inbox import Inbox
from gateway.domain.outbox import Outbox
from gateway.domain.state import RoutingState
from gateway.events import EventBus
from gateway.keys import KEY_CHECK as KEY_CHECK  # where the store keeps its key checks
from gateway.keys import NO_KEY_DETAIL, check_keys, given_keys, load_keys
from gateway.media import MediaDownloads
from gateway.metrics import ChannelState, Metrics
from gateway.outbound import OutboundWorker
from gateway.pipeline import Pipeline
from gateway.queue_runner import QueueRunner
from gateway.replicas.follower import Follower
from gateway.replicas.leases import LeaseKeeper
from gateway.replicas.limits import (
    LocalFailures,
    LocalLimits,
    SharedBuckets,
    SharedFailures,
    SharedLimits,
)
from gateway.replicas.link import RedisLink
from gateway.retention import Retention
from gateway.store import Store, open_store
from gateway.surveys import Surveys, window_of
from gateway.webhooks.service import Webhooks
from gateway.windows import WindowWatch
from kernel.events import Event
from kernel.ids import AgentId, ChannelId
from kernel.models import Agent, ChannelType, Identity, Message
from kernel.ratelimit import Buckets, LocalBuckets, RateLimiter
from kernel.secrets import ENV_VAR, KeyMissing, Keyring, SecretBox

log = logging.getLogger(__name__)


# An admin token shorter than this is refused at start: it is the key to everything.
ADMIN_TOKEN_MIN_LENGTH = TOKEN_MIN_LENGTH

# Events whose message another replica's sockets may need to show.
RELAYED = frozenset({"message.sent", "message.received"})


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
        if 0 < len(self.admin_token) < ADMIN_TOKEN_MIN_LENGTH:
            raise ConfigError(
                [
                    Problem(
                        "OMNIGW_ADMIN_TOKEN",
                        f"is {len(self.admin_token)} characters long; at least "
                        f"{ADMIN_TOKEN_MIN_LENGTH} are needed (make one with: python3 -c "
                        "'import secrets; print(secrets.token_urlsafe(32))'), or leave it "
                        "unset to have one generated at each start",
                    )
                ]
            )
        if not self.admin_token:
            self.admin_token = "ogw_admin_" + secrets.token_urlsafe(24)
        self.metrics = Metrics()
        self.bus = EventBus(settings.events.ring_size)
        self.lifecycle = Lifecycle()
        self.channels = LiveChannels(settings.channels, self._launch)
        self.connectors: dict[ChannelId, Connector] = self.channels.connectors
        self._store: Store | None = None
        self._stopped = False
        self.keys = Keyring(())  # read at start (gateway.keys)
        # Replicas only (a shared store):
        self.keeper: LeaseKeeper | None = None
        self.link: RedisLink | None = None
        self.follower: Follower | None = None

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
        # Customers' messages, files and the secret key live here: the owner's only.
        s.server.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A refused key (too short, empty) stops the start before anything is opened.
        given = await given_keys(s.server.data_dir, os.environ.get(ENV_VAR))
        self._store = store = await open_store(
            s.store_url,
            on_events=self._committed,
            pool_size=s.store.pool_size,
            lease_seconds=s.store.lease_seconds,
            on_commit=self._told_others,
        )
        self.bus.start_at(await store.events.last_seq())
        if store.shared:
            await self._join_replicas(store)
        routing = RoutingState(
            s.routing,
            {c.type for c in s.channels},
            Clocks(s.business_hours, s.sla_policies, s.routing.default_language),
        )
        bot_rules = BotRules(tuple(s.bots))
        self.inbox = Inbox(store, routing, bot_rules)
        self.outbox = Outbox(store)
        self.assignments = Assignments(store, routing)
        self.contacts = Contacts(store)
        # Replicas: a token revoked on one stops working on the others within a second.
        self.auth = Authenticator(
            store.tokens,
            self.admin_token,
            cache_seconds=1.0 if store.shared else CACHE_SECONDS,
            metrics_token=s.server.metrics_token.get_secret_value(),
        )
        rate, burst = s.server.login_failures_per_minute / 60, s.server.login_failures_burst
        self.logins = LoginGuard(
            self.auth,
            SharedFailures(self.link, rate, burst)
            if self.link is not None
            else LocalFailures(rate, burst),
        )
        if self.link is not None:
            self.logins.on_block = self._block_elsewhere
        self.api_limits: Limits = (
            SharedLimits(self.link, s.server.api_rate_per_second, s.server.api_rate_burst)
            if self.link is not None
            else LocalLimits(RateLimiter(s.server.api_rate_per_second, s.server.api_rate_burst))
        )
        self.outbound = OutboundWorker(
            store.outbound, self.outbox, lambda: self.channels.connectors, self.metrics
        )
        self.queue = QueueRunner(
            self.assignments,
            interval=s.routing.dispatch_interval,
            on_customer_messages=self.outbound.wake,
        )
        self.attachments = Attachments(
            s.server.data_dir / "attachments",
            store.attachments,
            max_bytes=s.server.max_attachment_bytes,
            public_url=s.server.public_url or None,
        )
        self.retention = Retention(store, self.attachments.root, self.bus, s.retention, self.keeper)
        self.commands = Commands(
            store,
            self.assignments,
            self.outbox,
            self.contacts,
            self.channels,
            self.retention,
            self.attachments,
            wake_queue=self.queue.kick,
            wake_sender=self.outbound.wake,
            bots=bot_rules,
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
        self.media = MediaDownloads(store, self.attachments, s.attachments, self.metrics)
        self.pipeline.on_media = self.media.wake
        self.pipeline.on_customer_messages = self.outbound.wake
        self.pipeline.keeper = self.keeper
        self.keys = keys = await load_keys(store, s.server.data_dir, given)
        await self._check_key(store, keys)
        box = SecretBox(keys)
        self.webhooks = Webhooks(
            store, self.bus, s.webhook_delivery, box, self.metrics, self.keeper
        )
        await self.webhooks.configure(s.webhooks, s.bots)
        self.bots = Bots(
            store,
            bot_rules,
            self.webhooks.deliveries,
            wake_queue=self.queue.kick,
            bus=self.bus,
            channels=self.channels,
            keeper=self.keeper,
        )
        self.surveys = Surveys(
            store,
            s.surveys,
            s.server.public_url,
            keys,
            window_of(self.channels),
            wake_sender=self.outbound.wake,
            keeper=self.keeper,
        )
        if s.surveys.enabled:
            self.inbox.surveys = self.assignments.surveys = self.surveys.plan
            self.commands.on_resolved = self.surveys.kick
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
        # Webchat's limits per visitor and client address: shared by replicas with Redis.
        buckets: Buckets = SharedBuckets(self.link) if self.link is not None else LocalBuckets()
        self._build_context = BuildContext(
            derive_key=self._derive_key,
            data_dir=s.server.data_dir,
            http_client=provider_client,
            buckets=buckets,
        )
        await self.channels.start_configured()
        self.channel_admin = ChannelAdmin(store.channels, box, self.channels)
        await self.channel_admin.load()  # channels added through the admin API
        if self.follower is not None:
            self.channel_admin.on_change = self.follower.config_changed
            self.commands.on_typing = self._typing_elsewhere
        await self.pipeline.drain()  # their first state changes are in the log before we serve
        self._watch()
        await self.webhooks.start()
        self.outbound.start()
        self.media.start()  # files of messages stored before a restart too
        self.queue.start()  # whatever waited in the queue while we were down
        self.retention.start()
        self.bots.start()
        self.windows = WindowWatch(
            store,
            self.channels,
            lead=s.events.window_closing_lead_seconds,
            every=s.events.window_sweep_seconds,
            keeper=self.keeper,
        )
        self.windows.start()
        self.surveys.start()
        if self.follower is not None:
            self.follower.start()
        self.lifecycle.started = True

    def _watch(self) -> None:
        """What /metrics reads from the running gateway when scraped."""
        m = self.metrics
        m.gauge(
            "omnigw_webchat_sockets",
            "Open webchat sockets.",
            lambda: float(self.channels.sockets()),
        )
        m.gauge("omnigw_sse_clients", "Open event streams.", lambda: float(self.lifecycle.streams))
        m.gauge(
            "omnigw_event_log_last_id",
            "Newest event id in the durable log.",
            lambda: float(self.bus.last_seq),
        )
        m.watch(
            channels=lambda: (
                ChannelState(s.id, s.type, s.state) for s in self.channels.statuses()
            ),
            endpoints=self.webhooks.deliveries.backlogs,
        )
        m.probe(self._read_queue)

    async def _read_queue(self) -> None:
        try:
            queue = await self.store.stats.queue()
        except BaseException:
            self.metrics.set_queue({})  # left out of this scrape rather than shown stale
            raise
        for channel_id in self.channels.connectors:  # those with none queued show 0
            queue.setdefault(channel_id, (0, None))
        self.metrics.set_queue(queue)

    @staticmethod
    async def _check_key(store: Store, keys: Keyring) -> None:
        """Say loudly when a key the store's secrets may be sealed with is not among this
        process's keys (replicas given different keys; a key file lost): what it sealed
        cannot be read by this process. The store keeps a check per key (gateway.keys)."""
        await check_keys(store, keys)

    def _derive_key(self, purpose: str) -> Keyring:
        if not self.keys:
            raise KeyMissing(NO_KEY_DETAIL)
        return self.keys.derive(purpose)

    # --- replicas (a shared store) -------------------------------------------------------

    async def _join_replicas(self, store: Store) -> None:
        """Start what replicas share: leases, the Redis link, following the others."""
        s = self.settings
        self.keeper = LeaseKeeper(store.leases, s.store.lease_seconds)
        self.keeper.start()
        if s.redis.url:
            self.link = RedisLink(s.redis.url)
            self.link.on("leases", lambda _payload: self.keeper_wake())
            self.keeper.on_want = lambda: self.follower.spawn(self.link.publish("leases", ""))  # type: ignore[union-attr]
            self.link.on("typing", self._typing_here)
            self.link.on("logins", self._blocked_elsewhere)
        self.follower = Follower(
            store, self.link, poll_seconds=s.redis.poll_seconds, resync=self._resync
        )
        if self.link is not None:
            await self.link.start()

    def keeper_wake(self) -> None:
        if self.keeper is not None:
            self.keeper.wake()

    def _committed(self, events: list[Event]) -> None:
        """Committed events, in order, whoever wrote them."""
        self.bus.publish(events)
        if self.follower is not None:
            self._relay(events)

    def _told_others(self) -> None:
        if self.follower is not None:
            self.follower.committed()

    def _relay(self, events: list[Event]) -> None:
        """Messages of socket channels (webchat) to the sockets this replica holds."""
        for event in events:
            if event.type not in RELAYED:
                continue
            data = event.data.get("message")
            if not isinstance(data, dict):
                continue
            connector = self.channels.connectors.get(ChannelId(str(data.get("channel_id"))))
            if isinstance(connector, SocketConnector):
                try:
                    connector.relay(Message.model_validate(data))
                except Exception:
                    log.exception("relaying a message to this replica's sockets failed")

    async def _resync(self) -> None:
        """Settings another replica changed through its API."""
        await self.channel_admin.sync()
        await self.webhooks.deliveries.sync()

    def _typing_elsewhere(self, channel_id: ChannelId, external_id: str, on: bool) -> None:
        if self.link is not None and self.follower is not None:
            payload = json.dumps({"channel_id": channel_id, "external_id": external_id, "on": on})
            self.follower.spawn(self.link.publish("typing", payload))

    def _block_elsewhere(self, address: str, seconds: float) -> None:
        """Failed logins used up: the other replicas refuse the address at once too."""
        if self.link is not None and self.follower is not None:
            payload = json.dumps({"address": address, "seconds": seconds})
            self.follower.spawn(self.link.publish("logins", payload))

    def _blocked_elsewhere(self, payload: str) -> None:
        try:
            found = json.loads(payload)
            address, seconds = str(found["address"]), float(found["seconds"])
        except (ValueError, KeyError, TypeError):
            return
        logins: LoginGuard | None = getattr(self, "logins", None)  # None until started
        if logins is not None and 0 < seconds <= 86400:
            logins.block(address, seconds)

    def _typing_here(self, payload: str) -> None:
        try:
            found = json.loads(payload)
            connector = self.channels.connectors.get(ChannelId(found["channel_id"]))
            recipient = Identity(
                channel_id=ChannelId(found["channel_id"]),
                channel_type=ChannelType.WEBCHAT,
                external_id=str(found["external_id"]),
            )
            on = bool(found["on"])
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(connector, SocketConnector) and self.follower is not None:
            self.follower.spawn(connector.send_typing(recipient, on))

    async def _launch(self, settings: Any) -> Connector:
        connector: Connector
        if isinstance(settings, Unopened):
            connector = locked_channel(settings)
        else:
            try:
                connector = build_connector(settings, self._build_context)
            except KeyMissing as exc:  # running without a key: it waits for one
                connector = locked_channel(Unopened(settings.id, settings.type, exc.message))
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
        if self.follower is not None:
            await self.follower.close()
        await self.retention.stop()
        await self.bots.stop()
        await self.windows.stop()
        await self.queue.stop()
        await self.surveys.stop()
        await self.webhooks.stop()
        await self.outbound.stop()
        await self.media.stop()
        await self.channels.aclose()
        await self.queue.settle()
        await self.pipeline.drain()
        if self.keeper is not None:
            await self.keeper.close()  # what it held goes to the others at once
        if self.link is not None:
            await self.link.close()
        await self.store.close()

    def web_app(self) -> web.Application:
        ctx = ApiContext(
            settings=self.settings,
            store=self.store,
            commands=self.commands,
            assignments=self.assignments,
            channels=self.channels,
            channel_admin=self.channel_admin,
            webhooks=self.webhooks,
            bus=self.bus,
            auth=self.auth,
            logins=self.logins,
            limits=self.api_limits,
            metrics=self.metrics,
            attachments=self.attachments,
            lifecycle=self.lifecycle,
            surveys=self.surveys,
            console_keys=self.keys,
            redis_state=lambda: None if self.link is None else self.link.state,
        )
        app = build_app(ctx)
        if self.settings.server.console:
            install_console(app, ctx, app[API])
        return app
