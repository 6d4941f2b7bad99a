"""Webhook endpoints as the gateway runs them: secrets sealed at rest, endpoints from the
config file kept in step with it, and delivery (`Deliveries`) told about every change.

An endpoint whose secrets no key of this gateway opens is not delivered to, and shows as
disabled with the reason (`shown`) without that being written to the store: given its
key back, the gateway delivers to it again; given a new secret (rotate) it delivers at
once. Endpoints of the config file sign with the file's secret whatever the store holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from config.bots import BotSettings
from config.webhooks import DeliverySettings, WebhookSettings
from gateway.events import EventBus
from gateway.metrics import Metrics
from gateway.replicas.leases import LeaseKeeper
from gateway.store.protocols import Store
from gateway.store.records import WebhookRecord
from gateway.webhooks.delivery import Deliveries
from kernel import webhook_signing as signing
from kernel.errors import Conflict, Invalid, NotFound
from kernel.ids import ulid
from kernel.netguard import UnsafeUrl
from kernel.secrets import SecretBox, Unsealable

log = logging.getLogger(__name__)


def bot_endpoint_id(bot_id: str) -> str:
    """A bot's endpoint (a config endpoint's id never holds a colon)."""
    return f"bot:{bot_id}"


@dataclass(frozen=True)
class StoredSecret:
    secret: str
    expires_at: float | None = None  # Unix time; None while it is the current secret

    def valid(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True)
class Keys:
    keys: list[bytes]
    # When one of the secrets stops being valid (then the keys must be looked up again).
    refresh_at: float | None


class Webhooks:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        settings: DeliverySettings,
        box: SecretBox,
        metrics: Metrics,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.box = box
        self._configured: dict[str, str] = {}  # config endpoints' secrets, by id
        self.deliveries = Deliveries(store, bus, settings, self.keys, metrics, keeper)

    # --- secrets -----------------------------------------------------------------------

    def _secrets(self, record: WebhookRecord) -> list[StoredSecret]:
        return [StoredSecret(**s) for s in json.loads(self.box.open(record.sealed_secrets))]

    def keys(self, record: WebhookRecord) -> Keys:
        """The keys to sign with; raises Unsealable for secrets no key of ours opens."""
        try:
            stored = self._secrets(record)
        except Unsealable:
            configured = self._configured.get(record.id)
            if configured is None:
                raise
            stored = [StoredSecret(configured)]
        now = time.time()
        valid = [s for s in stored if s.valid(now)]
        expiries = [s.expires_at for s in valid if s.expires_at is not None]
        return Keys([signing.secret_key(s.secret) for s in valid], min(expiries, default=None))

    def _seal(self, secrets: list[StoredSecret]) -> str:
        return self.box.seal(json.dumps([vars(s) for s in secrets]))

    def shown(self, record: WebhookRecord) -> WebhookRecord:
        """The endpoint as the API shows it: disabled, with the reason, while its secrets
        cannot be opened here."""
        unopened = self.deliveries.unopened.get(record.id)
        if unopened is None or record.disabled_at is not None:
            return record
        at, reason = unopened
        return record.model_copy(update={"disabled_at": at, "disabled_reason": reason})

    # --- lifecycle ---------------------------------------------------------------------

    async def configure(
        self, configured: Sequence[WebhookSettings], bots: Sequence[BotSettings] = ()
    ) -> None:
        """Bring the config file's endpoints in (before anything else of this start emits
        events, so a new endpoint gets all of them), bots' endpoints included: each gets
        its conversations' events (``bot_endpoint_id``), with its own timeout and retries."""
        kept = {await self._apply_config(item) for item in configured}
        for bot in bots:
            endpoint_id = bot_endpoint_id(bot.id)
            kept.add(
                await self._apply_config(
                    WebhookSettings(url=bot.url, secret=bot.secret, description=f"bot {bot.id}"),
                    endpoint_id=endpoint_id,
                    source="bot",
                )
            )
            self.deliveries.own_settings[endpoint_id] = self.settings.model_copy(
                update={
                    "timeout": bot.timeout,
                    "retry_schedule": list(bot.retry_schedule),
                    "disable_after": 0.0,  # a bot's conversations fall to humans instead
                }
            )
        # An endpoint taken out of the config file stops receiving: it is removed, with
        # whatever was still waiting for it.
        for record in await self.store.webhooks.all():
            if record.source in ("config", "bot") and record.id not in kept:
                log.info("webhook %s is no longer in the config file: removed", record.id)
                await self.store.webhooks.delete(record.id)

    async def start(self) -> None:
        await self.deliveries.start()

    async def stop(self) -> None:
        await self.deliveries.stop()

    async def _apply_config(
        self, item: WebhookSettings, *, endpoint_id: str | None = None, source: str = "config"
    ) -> str:
        endpoint_id = (
            endpoint_id or item.id or "cfg-" + hashlib.sha256(item.url.encode()).hexdigest()[:12]
        )
        secret = item.secret.get_secret_value()
        self._configured[endpoint_id] = secret
        existing = await self.store.webhooks.get(endpoint_id)
        secrets = [StoredSecret(secret)]
        cursor = await self.store.events.last_seq()
        # Without a key nothing can be sealed: what the store holds stays for when it is back.
        kept = existing.sealed_secrets if existing is not None else ""
        if existing is not None:
            try:
                stored = self._secrets(existing)
            except Unsealable as exc:
                log.warning(
                    "webhook %s: %s; it signs with the config file's secret alone", endpoint_id, exc
                )
                stored = []
            current = [s for s in stored if s.expires_at is None]
            if current and current[0].secret != secret:
                # The config's secret changed: the old one keeps signing for the overlap.
                until = time.time() + self.settings.rotation_overlap
                secrets.append(StoredSecret(current[0].secret, until))
            elif current:
                secrets = stored
        await self.store.webhooks.put(
            WebhookRecord(
                id=endpoint_id,
                url=item.url,
                description=item.description,
                events=item.events,
                source=source,
                cursor=cursor,
                sealed_secrets=self._seal(secrets) if self.box.has_key else kept,
            ),
            keep_cursor=True,
        )
        return endpoint_id

    # --- admin operations --------------------------------------------------------------

    async def check_url(self, url: str) -> None:
        try:
            await self.settings.guard().check_url(url)
        except UnsafeUrl as exc:
            raise Invalid(str(exc), code="unsafe_url") from None

    async def create(
        self, url: str, events: list[str], description: str | None, secret: str | None
    ) -> tuple[WebhookRecord, str]:
        await self.check_url(url)
        secret = secret or signing.new_secret()
        try:
            signing.secret_key(secret)
        except ValueError as exc:
            raise Invalid(str(exc), code="invalid_secret") from None
        record = await self.store.webhooks.put(
            WebhookRecord(
                id="wh_" + ulid(),
                url=url,
                description=description,
                events=events,
                cursor=await self.store.events.last_seq(),  # from now on
                sealed_secrets=self._seal([StoredSecret(secret)]),
            ),
            keep_cursor=False,
        )
        await self.deliveries.reload(record.id)
        return record, secret

    async def get(self, endpoint_id: str) -> WebhookRecord:
        record = await self.store.webhooks.get(endpoint_id)
        if record is None:
            raise NotFound(f"webhook {endpoint_id} not found", code="webhook_not_found")
        return record

    def _managed(self, record: WebhookRecord) -> None:
        if record.source in ("config", "bot"):
            raise Conflict(
                "this endpoint comes from the config file; change it there",
                code="managed_by_config",
            )

    async def update(
        self,
        endpoint_id: str,
        *,
        url: str | None,
        events: list[str] | None,
        description: str | None,
        enabled: bool | None,
    ) -> WebhookRecord:
        record = await self.get(endpoint_id)
        if url is not None or events is not None or description is not None:
            self._managed(record)
            if url is not None:
                await self.check_url(url)
            record = await self.store.webhooks.put(
                record.model_copy(
                    update={
                        "url": url or record.url,
                        "events": events if events is not None else record.events,
                        "description": description
                        if description is not None
                        else record.description,
                    }
                ),
                keep_cursor=True,
            )
        if enabled is not None:
            record = await self.store.webhooks.set_enabled(
                endpoint_id, enabled, None if enabled else "disabled through the API"
            )
        await self.deliveries.reload(endpoint_id)
        return record

    async def delete(self, endpoint_id: str) -> None:
        self._managed(await self.get(endpoint_id))
        await self.deliveries.pause(endpoint_id)  # its last outcomes land before the rows go
        try:
            await self.store.webhooks.delete(endpoint_id)
        finally:
            await self.deliveries.reload(endpoint_id)

    async def rotate(self, endpoint_id: str, overlap: float | None) -> tuple[str, float]:
        record = await self.get(endpoint_id)
        self._managed(record)
        now = time.time()
        until = now + (self.settings.rotation_overlap if overlap is None else overlap)
        try:
            previous = self._secrets(record)
        except Unsealable:  # a key lost: the new secret replaces what cannot be opened
            previous = []
        kept = [
            StoredSecret(s.secret, until if s.expires_at is None else min(until, s.expires_at))
            for s in previous
            if s.valid(now)
        ]
        secret = signing.new_secret()
        sealed = self._seal([StoredSecret(secret), *kept])
        await self.store.webhooks.put(
            record.model_copy(update={"sealed_secrets": sealed}), keep_cursor=True
        )
        await self.deliveries.reload(endpoint_id)
        return secret, until

    async def replay(self, endpoint_id: str, *, since_seq: int | None, dead: bool) -> int:
        await self.get(endpoint_id)
        # The worker stops first: its last flush would otherwise move the cursor forward
        # again over what the replay just moved it back from.
        await self.deliveries.pause(endpoint_id)
        try:
            count = await self.store.webhooks.replay(endpoint_id, since_seq=since_seq, dead=dead)
        finally:
            await self.deliveries.reload(endpoint_id)
        return count
