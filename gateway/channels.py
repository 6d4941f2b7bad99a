"""Channels added, changed and removed through the admin API, while the gateway runs.

Channels of the config file stay as the file says (the API shows them, and refuses to
change them). Channels added through the API are validated with the same settings models
as the file's, kept in the store sealed with the gateway's secret key (credentials
included: nothing of them is readable at rest), and started at once and at every start.
Credentials are write-only: answers name the ones that are set, never their values.

A channel that cannot run for want of the secret key (its settings sealed with a key
this gateway does not have, or the gateway running without one: gateway.keys) stays
listed as a ``LockedChannel`` that shows why, holds its replies and asks its provider
and visitors to come back later; given its settings again (PATCH) it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from config.schema import ChannelSettings
from connectors.base import (
    Connector,
    HealthState,
    Sink,
    SocketConnector,
    WebhookConnector,
)
from connectors.errors import AuthError
from gateway.store.protocols import ChannelRecords
from kernel.envelope import OutboundMessage, SendReceipt
from kernel.errors import Conflict, Invalid, Malformed, NotFound
from kernel.ids import ChannelId
from kernel.models import ChannelType
from kernel.secrets import SecretBox, Unsealable

log = logging.getLogger(__name__)

_SETTINGS: TypeAdapter[Any] = TypeAdapter(ChannelSettings)


def revealed(settings: BaseModel) -> dict[str, Any]:
    """The settings as plain JSON values, credentials included (to be sealed)."""
    return json.loads(json.dumps(_reveal(settings.model_dump()), default=str))  # type: ignore[no-any-return]


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(v) for v in value]
    return value


def public_view(settings: BaseModel) -> tuple[dict[str, Any], list[str]]:
    """The settings without their credentials, and the paths of the credentials set."""
    secrets: list[str] = []

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                if isinstance(item, SecretStr):
                    secrets.append(where)
                else:
                    out[key] = walk(item, where)
            return out
        if isinstance(value, list | tuple):
            return [walk(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return value

    shown = walk(settings.model_dump(), "")
    return json.loads(json.dumps(shown, default=str)), secrets


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def credentials_to_give_again(
    old: Any, new: Any, patch: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """The endpoints credentials are sent to that ``new`` changes from ``old``, and the
    key paths of the credentials sent to them that ``patch`` does not give."""
    before = old.credential_endpoints()
    changed: list[str] = []
    missing: list[str] = []
    for name, (where, secrets) in sorted(new.credential_endpoints().items()):
        if name in before and before[name][0] == where:
            continue
        changed.append(name)
        missing.extend(path for path in secrets if not _given(patch, path))
    return changed, sorted(set(missing))


def _given(patch: Any, path: str) -> bool:
    """Whether a merge patch sets the value at ``path`` (``imap.password``,
    ``pages[0].access_token``)."""
    value = patch
    for step in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if step.startswith("["):
            index = int(step[1:-1])
            if not isinstance(value, list) or index >= len(value):
                return False
            value = value[index]
        elif isinstance(value, dict) and value.get(step) is not None:
            value = value[step]
        else:
            return False
    return True


def validate(raw: dict[str, Any]) -> Any:
    try:
        return _SETTINGS.validate_python(raw)
    except ValidationError as exc:
        raise Malformed(
            "the channel settings are not valid",
            code="validation_error",
            details=[
                {"field": ".".join(str(p) for p in e["loc"]) or None, "message": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ],
        ) from None


@dataclass(frozen=True)
class Unopened:
    """A channel that cannot be built: what is known of it, and why."""

    id: str
    type: str
    reason: str


class LockedChannel(WebhookConnector, SocketConnector):
    """Stands in for a channel that cannot run without the secret key. It shows
    BAD_CREDENTIALS with the reason (so the send path holds its replies instead of
    failing them), and answers its provider's webhooks and its visitors' sockets 503, so
    that they try again once it runs."""

    def __init__(self, channel: Unopened) -> None:
        super().__init__(ChannelId(channel.id))
        self.reason = channel.reason

    async def start(self, sink: Sink) -> None:
        await super().start(sink)
        self.set_health(HealthState.BAD_CREDENTIALS, self.reason)

    async def send(self, outbound: OutboundMessage) -> SendReceipt:
        raise AuthError(self.reason)

    async def handle_webhook(self, request: web.Request) -> web.StreamResponse:
        return self._unavailable()

    async def handle_socket(self, request: web.Request) -> web.StreamResponse:
        return self._unavailable()

    def _unavailable(self) -> web.Response:
        body = {"error": {"code": "channel_unavailable", "message": self.reason, "details": None}}
        return web.json_response(body, status=503, headers={"Retry-After": "60"})

    def open_sockets(self) -> int:
        return 0

    async def close_sockets(self) -> None:
        return None


_LOCKED: dict[ChannelType, type[LockedChannel]] = {
    t: type(f"Locked{t.value.title()}Channel", (LockedChannel,), {"type": t}) for t in ChannelType
}


def locked_channel(channel: Unopened) -> LockedChannel:
    return _LOCKED[ChannelType(channel.type)](channel)


@dataclass(frozen=True)
class ChannelStatus:
    """A running channel as the API lists it."""

    id: str
    type: str
    state: str
    detail: str | None
    since: datetime
    capabilities: list[str]
    source: str  # "config" or "api"


class LiveChannels:
    """The channels running now: their connectors, by id, and where each is defined."""

    def __init__(
        self,
        config: Sequence[Any],
        launch: Callable[[Any], Awaitable[Connector]],
    ) -> None:
        self.connectors: dict[ChannelId, Connector] = {}
        self.from_config = {c.id: c for c in config}
        self.launch = launch  # builds and starts a connector for settings

    async def start_configured(self) -> None:
        for settings in self.from_config.values():
            self.connectors[ChannelId(settings.id)] = await self.launch(settings)

    def get(self, channel_id: str) -> Connector | None:
        return self.connectors.get(ChannelId(channel_id))

    def types(self) -> dict[ChannelId, ChannelType]:
        return {cid: c.type for cid, c in self.connectors.items()}

    def statuses(self) -> list[ChannelStatus]:
        return [
            ChannelStatus(
                id=cid,
                type=c.type.value,
                state=c.health.state.value,
                detail=c.health.detail,
                since=c.health.since,
                capabilities=sorted(c.capabilities),
                source="config" if cid in self.from_config else "api",
            )
            for cid, c in self.connectors.items()
        ]

    def demo_channel(self) -> str | None:
        """The first webchat channel (the demo page chats on it)."""
        for cid, c in self.connectors.items():
            if c.type == ChannelType.WEBCHAT:
                return cid
        return None

    def sockets(self) -> int:
        return sum(
            c.open_sockets() for c in self.connectors.values() if isinstance(c, SocketConnector)
        )

    async def close_sockets(self) -> None:
        """Close customers' sockets (before the server stops)."""
        for connector in self.connectors.values():
            if isinstance(connector, SocketConnector):
                await connector.close_sockets()

    async def aclose(self) -> None:
        for connector in self.connectors.values():
            with contextlib.suppress(Exception):
                await connector.aclose()


class ChannelAdmin:
    """What the admin API does to channels: the running ones are in ``live``."""

    def __init__(self, records: ChannelRecords, box: SecretBox, live: LiveChannels) -> None:
        self.records = records
        self.box = box
        self.live = live
        self.connectors = live.connectors
        self.from_config = live.from_config
        self.launch = live.launch
        self.settings: dict[str, Any] = {}  # API channels' current settings, by id
        self.locked: dict[str, str] = {}  # those whose settings cannot be opened: their type
        self._sealed: dict[str, str] = {}  # what the store holds for each, as last seen
        self._changing = asyncio.Lock()
        # Called after a change here (replicas sharing the store then read it at once).
        self.on_change: Callable[[], None] | None = None

    async def load(self) -> None:
        """Start every channel kept in the store (at the gateway's start)."""
        await self.sync(warn=True)

    async def sync(self, *, warn: bool = False) -> None:
        """Bring the running API channels in step with the store: another replica may
        have added, changed or removed some."""
        async with self._changing:
            stored = {s.id: s for s in await self.records.all()}
            for channel_id in [c for c in self.settings if c not in stored]:
                log.info("channel %s was removed elsewhere: stopped here", channel_id)
                await self._stop(channel_id)
            for record in stored.values():
                if record.id in self.from_config:
                    if warn:
                        log.warning(
                            "channel %s is in the config file and was also added through "
                            "the API; the config file's is used",
                            record.id,
                        )
                    continue
                if self._sealed.get(record.id) == record.sealed:
                    continue
                try:
                    settings = _SETTINGS.validate_python(json.loads(self.box.open(record.sealed)))
                except Unsealable as exc:  # sealed with a key this gateway does not have
                    await self._lock(record.id, record.type, record.sealed, exc)
                    continue
                except Exception as exc:  # a type no longer available
                    if self._sealed.get(record.id) is None:
                        log.error(
                            "channel %s kept in the store cannot be started: %s", record.id, exc
                        )
                    self._sealed[record.id] = record.sealed
                    continue
                if self.settings.get(record.id) == settings:
                    self._sealed[record.id] = record.sealed  # sealed again under a new key
                    continue
                await self._stop(record.id)
                self._sealed[record.id] = record.sealed
                self.settings[record.id] = settings
                self.connectors[settings.id] = await self.launch(settings)

    async def _lock(self, channel_id: str, type_: str, sealed: str, exc: Exception) -> None:
        """Show the channel as one that cannot run, with the reason."""
        reason = (
            f"{exc}. Give that key back, or PATCH the channel with its whole settings "
            "(credentials included) to seal them with this one."
        )
        log.error("channel %s kept in the store cannot be started: %s", channel_id, reason)
        await self._stop(channel_id)
        self._sealed[channel_id] = sealed
        try:
            unopened = Unopened(channel_id, ChannelType(type_).value, reason)
        except ValueError:
            return  # a type no longer available: nothing to stand in for it
        self.locked[channel_id] = unopened.type
        self.connectors[ChannelId(channel_id)] = await self.launch(unopened)

    async def _stop(self, channel_id: str) -> None:
        self.settings.pop(channel_id, None)
        self.locked.pop(channel_id, None)
        self._sealed.pop(channel_id, None)
        connector = self.connectors.pop(ChannelId(channel_id), None)
        if connector is not None:
            await connector.aclose()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def current(self, channel_id: str) -> Any:
        """A channel's settings, wherever it is defined; None for an unknown channel."""
        return self.settings.get(channel_id) or self.from_config.get(channel_id)

    async def create(self, raw: dict[str, Any]) -> Any:
        settings = validate(raw)
        async with self._changing:
            if settings.id in self.connectors or settings.id in self.from_config:
                raise Conflict(f"channel {settings.id} already exists", code="channel_exists")
            sealed = self.box.seal(json.dumps(revealed(settings)))
            await self.records.put(settings.id, settings.type, sealed, new=True)
            self._sealed[settings.id] = sealed
            self.settings[settings.id] = settings
            self.connectors[settings.id] = await self.launch(settings)
        log.info("channel %s (%s) added", settings.id, settings.type)
        self._changed()
        return settings

    async def update(self, channel_id: str, patch: dict[str, Any]) -> Any:
        async with self._changing:
            old = self._changeable(channel_id)
            # A locked channel's settings cannot be read: the patch gives them all again.
            known = revealed(old) if old is not None else self._locked_base(channel_id)
            raw = merge_patch(known, patch)
            if raw.get("id") != channel_id:
                raise Invalid("a channel's id cannot change", code="immutable_field")
            if raw.get("type") != known["type"]:
                raise Invalid("a channel's type cannot change", code="immutable_field")
            settings = validate(raw)
            # A locked channel's patch gives every setting again, credentials included.
            endpoints, missing = (
                credentials_to_give_again(old, settings, patch) if old is not None else ([], [])
            )
            if missing:
                raise Invalid(
                    f"{' and '.join(endpoints)} changed: the credentials sent there must be "
                    f"given again in the same change ({', '.join(missing)})",
                    code="credentials_required",
                    details={"endpoints": endpoints, "fields": missing},
                )
            sealed = self.box.seal(json.dumps(revealed(settings)))
            await self.records.put(channel_id, settings.type, sealed, new=False)
            await self._stop(channel_id)
            self._sealed[channel_id] = sealed
            self.settings[channel_id] = settings
            self.connectors[ChannelId(channel_id)] = await self.launch(settings)
        log.info("channel %s changed", channel_id)
        self._changed()
        return settings

    async def delete(self, channel_id: str) -> None:
        async with self._changing:
            self._changeable(channel_id)
            await self.records.delete(channel_id)
            await self._stop(channel_id)
        log.info("channel %s removed", channel_id)
        self._changed()

    def _locked_base(self, channel_id: str) -> dict[str, Any]:
        return {"id": channel_id, "type": self.locked[channel_id]}

    def _changeable(self, channel_id: str) -> Any:
        """The API channel's settings (None for a locked one); errors for the others."""
        if channel_id in self.from_config:
            raise Conflict(
                f"channel {channel_id} is defined in the config file; change it there",
                code="channel_in_config",
            )
        if channel_id in self.locked:
            return None
        settings = self.settings.get(channel_id)
        if settings is None:
            raise NotFound(f"channel {channel_id} not found", code="channel_not_found")
        return settings
