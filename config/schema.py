"""The settings schema (design.md section 7). Unknown keys are errors, so typos show."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from config.bots import BotSettings
from config.webhooks import DeliverySettings, WebhookSettings
from connectors.registry import AVAILABLE, settings_union
from connectors.settings import ChannelSettings as AnyChannelSettings
from kernel.durations import Duration
from kernel.models import ChannelIdStr, Presence
from routing.hours import BusinessHoursSettings, Calendars
from routing.settings import RoutingSettings
from routing.sla import SlaPolicySettings

# Any channel type's settings, by its `type` (from connectors.registry, where channel
# types are named once).
if TYPE_CHECKING:
    ChannelSettings = AnyChannelSettings
else:
    ChannelSettings = settings_union()
CHANNEL_TYPES_AVAILABLE = AVAILABLE
# A token shorter than this is refused at start (the admin token, the metrics token).
TOKEN_MIN_LENGTH = 32


DEFAULT_PORTS = {"http": 80, "https": 443}


def normal_origin(text: str) -> str:
    """An origin as browsers send it in `Origin`: lowercase scheme and host, no default
    port, nothing after the port. ValueError (saying why) for anything else."""
    raw = text.strip()
    if "*" in raw:
        raise ValueError(
            f"{raw!r}: wildcards are not allowed; requests that carry tokens must come from "
            'origins named exactly, so list each one (like "https://helpdesk.example")'
        )
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not raw.lower().startswith(f"{scheme}://"):
        raise ValueError(f"{raw!r} is not an http or https origin like https://helpdesk.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in raw or "#" in raw:
        raise ValueError(
            f"{raw!r} is not an origin: give only scheme://host[:port], no path, query or fragment"
        )
    if "@" in parts.netloc:
        raise ValueError(f"{raw!r} is not an origin: it may not name a user")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"{raw!r} has a port that is not a number from 0 to 65535") from None
    if not host:
        raise ValueError(f"{raw!r} names no host (expected scheme://host[:port])")
    try:
        host = host.encode("idna").decode("ascii")  # what browsers send for a non-ASCII name
    except UnicodeError:
        raise ValueError(f"{raw!r} does not name a valid host") from None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    shown = f"{scheme}://{host}"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        shown += f":{port}"
    return shown


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    data_dir: Path = Path("./omnigw-data")
    # Largest request body accepted on any endpoint, in bytes.
    max_body_bytes: Annotated[int, Field(ge=1024, le=100 * 1024 * 1024)] = 1024 * 1024
    # Serve the webchat demo page at "/".
    demo_page: bool = True
    # Serve the console (admins' and agents' pages) at /console.
    console: bool = True
    # Where clients reach the gateway (https://gateway.example); makes attachment URLs
    # absolute. Empty: URLs are paths on this server.
    public_url: str = ""
    # Largest file kept from a channel (e-mail attachment, inline image), in bytes.
    max_attachment_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024 * 1024)] = 25 * 1024 * 1024
    # HTTP API requests per token: a burst of `api_rate_burst`, refilled at
    # `api_rate_per_second`; beyond it, 429 with Retry-After. 0 turns the limit off.
    api_rate_per_second: Annotated[float, Field(ge=0)] = 200.0
    api_rate_burst: Annotated[int, Field(ge=1)] = 1000
    # Failed logins (bearer tokens that are not valid) per client address: a burst of
    # `login_failures_burst`, then `login_failures_per_minute`; beyond them the address
    # gets 429 with Retry-After and its tokens are not tried. 0 turns the limit off.
    login_failures_per_minute: Annotated[float, Field(ge=0)] = 10.0
    login_failures_burst: Annotated[int, Field(ge=1)] = 20
    # Proxies (addresses or networks, e.g. "127.0.0.1", "10.0.0.0/8") whose
    # X-Forwarded-For is believed: a request from one of them comes from the address they
    # name. Empty: the client is the connection's peer, whatever the header says.
    trusted_proxies: list[str] = Field(default_factory=list)
    # When set, GET /metrics needs `Authorization: Bearer <it>` (or an admin token), and
    # GET /readyz shows its details (store, Redis, channels) only with one; without, just
    # the status. Empty: both open to anyone who reaches the server.
    metrics_token: SecretStr = SecretStr("")
    # Origins of browser pages (helpdesks, agents' tools) that may call the API and read
    # the event stream (/v1/...): exact origins such as "https://helpdesk.example" or
    # "http://localhost:3000". Empty: no CORS, only same-origin pages and non-browsers.
    cors_origins: list[str] = Field(default_factory=list)

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for item in value:
            origin = normal_origin(item)
            if origin not in out:
                out.append(origin)
        return out

    @field_validator("metrics_token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        length = len(value.get_secret_value())
        if 0 < length < TOKEN_MIN_LENGTH:
            raise ValueError(
                f"is {length} characters long; at least {TOKEN_MIN_LENGTH} are needed (make "
                "one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), or "
                "leave it empty"
            )
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            try:
                out.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network like 10.0.0.0/8"
                ) from None
        return out


class StoreSettings(Section):
    # Empty: SQLite file "omnigw.db" in server.data_dir. postgresql://user:password@host/db
    # (password best as a ${ENV} reference): any number of replicas share it.
    url: str = ""
    # PostgreSQL: connections each process keeps for reads (writes use one more).
    pool_size: Annotated[int, Field(ge=1, le=500)] = 10
    # PostgreSQL: seconds after which work held by a process that stopped answering (a
    # mailbox's polling, an endpoint's deliveries, a reply being sent) goes to another.
    lease_seconds: Annotated[float, Field(ge=2, le=600)] = 10.0

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            scheme = value.split(":", 1)[0] if ":" in value else value[:20]
            raise ValueError(
                f"{scheme!r} stores are not supported; use sqlite:///path or "
                "postgresql://user@host/database"
            )
        return value

    @property
    def shared(self) -> bool:
        return self.url.startswith(("postgresql://", "postgres://"))


class RedisSettings(Section):
    # redis://[:password@]host:port/db, rediss:// (TLS) or unix:///path.sock. Empty: each
    # process on its own (replicas then learn of each other's work from the database,
    # within `poll_seconds`).
    url: str = ""
    # Without Redis, or while it cannot be reached: how often each replica looks in the
    # database for what other replicas did.
    poll_seconds: Annotated[float, Field(gt=0, le=10)] = 0.5

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected redis://host:port/db, rediss://... or unix:///path")
        return value


class EventsSettings(Section):
    sse_heartbeat_seconds: Annotated[float, Field(gt=0, le=300)] = 15.0
    ring_size: Annotated[int, Field(ge=100, le=1_000_000)] = 10_000
    # A stream client that cannot take what is written for this long is cut off; it
    # resumes with Last-Event-ID instead of making the gateway buffer for it.
    slow_consumer_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # conversation.window_closing fires this long before a reply window closes (once per
    # window); open conversations are looked at every window_sweep_seconds.
    window_closing_lead_seconds: Annotated[float, Field(gt=0, le=6 * 86400)] = 3600.0
    window_sweep_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # A ticket of POST /v1/events/tickets opens one stream (GET /v1/events?ticket=) within
    # this many seconds; unused, it is worth nothing after.
    ticket_seconds: Annotated[float, Field(ge=1, le=600)] = 60.0


DAY = 86400.0


class RetentionSettings(Section):
    """How long records are kept, each a duration ("90d", "12w"); 0 keeps them for ever.
    A sweep deletes or anonymises what is older, every `sweep_interval` (on PostgreSQL,
    one replica at a time)."""

    # Provider events the gateway could not use, kept as they came (to look into).
    raw_events: Duration = 30 * DAY
    # Webhook delivery attempts (GET /v1/webhooks/{id}/deliveries): statuses, answers.
    delivery_logs: Duration = 30 * DAY
    # Files received or uploaded; a message keeps its part, whose URL then answers 404.
    attachments: Duration = 0.0
    # Conversations resolved this long ago lose their messages' content and files and
    # their subject; their rows, times and events stay, so figures still add up.
    resolved_conversations: Duration = 0.0
    sweep_interval: Annotated[Duration, Field(ge=60, le=7 * DAY)] = 3600.0
    # PostgreSQL: after an erasure, rewrite the tables it touched (VACUUM FULL), so that
    # the erased values are gone from the database's files at once; each table is locked
    # while it is rewritten. false: a plain VACUUM, which leaves the old bytes in free
    # space until PostgreSQL reuses it. (SQLite zeroes what is deleted as it goes.)
    compact_after_erasure: bool = True

    @field_validator("raw_events", "delivery_logs", "attachments", "resolved_conversations")
    @classmethod
    def _at_least_an_hour(cls, value: float) -> float:
        if 0 < value < 3600:
            raise ValueError("keep records at least an hour (1h), or 0 for ever")
        return value


class SurveySettings(Section):
    """Satisfaction surveys after resolution (README: Surveys)."""

    enabled: bool = False
    # How long after a resolution the survey goes out (a conversation reopened before
    # then gets none).
    delay: Duration = 600.0
    # CSAT (1-5) is always asked; NPS (0-10) and CES (1-7) when turned on.
    nps: bool = False
    ces: bool = False
    # How long a survey takes answers after it went out.
    expire_after: Duration = 7 * 86400.0
    # Only conversations of these channels (empty: every channel).
    channels: list[ChannelIdStr] = Field(default_factory=list)
    # How often due surveys are looked for (one replica at a time on a shared store).
    sweep_interval: Annotated[Duration, Field(gt=0, le=3600)] = 30.0


class StatsSettings(Section):
    # A resolved conversation counts as resolved at first contact across channels only
    # if the same contact (its merge group) opens no new conversation, on any channel,
    # within this long after the resolution.
    fcr_window: Annotated[Duration, Field(gt=0)] = 72 * 3600.0


# What agents may upload (POST /v1/attachments) unless [attachments] upload_types says
# otherwise: pictures, sound, video, and the documents customers are sent.
DEFAULT_UPLOAD_TYPES = [
    "image/*",
    "audio/*",
    "video/*",
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.*",
    "application/vnd.ms-excel",
    "application/zip",
    "text/plain",
    "text/csv",
]


class AttachmentSettings(Section):
    # Files customers send on Messenger and Zalo come as the provider's URLs, which
    # expire: the gateway fetches them after answering the provider. Like webhook
    # delivery, never from the gateway's own networks unless allowed (link-local
    # addresses, cloud metadata among them, never).
    allow_private_networks: bool = False
    allow_loopback: bool = False
    # Tries per file before it is given up (with the reason on its part), the wait
    # before the second (each later one four times longer, at most 6 hours) and the
    # time one try may take.
    download_attempts: Annotated[int, Field(ge=1, le=20)] = 6
    download_retry_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    download_timeout: Annotated[float, Field(gt=0, le=3600)] = 120.0
    # Files fetched at once.
    download_concurrency: Annotated[int, Field(ge=1, le=64)] = 8
    # Types agents may upload; "type/*" for a whole family. The size limit is
    # [server] max_attachment_bytes.
    upload_types: list[str] = Field(default_factory=lambda: list(DEFAULT_UPLOAD_TYPES))


AgentIdStr = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")]
DEFAULT_CAPACITY = {"total": 5}


class AgentSettings(Section):
    id: AgentIdStr
    name: str | None = None
    skills: dict[str, Annotated[int, Field(ge=0, le=10)]] = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=list)
    capacity: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_CAPACITY)
    )
    # Presence an agent starts with when the config first creates it.
    presence: Presence = Presence.OFFLINE


class Settings(Section):
    """Built by config.loader.load_settings, which also refuses repeated ids (with the
    key of each, next to every other problem of the file)."""

    server: ServerSettings = ServerSettings()
    store: StoreSettings = StoreSettings()
    redis: RedisSettings = RedisSettings()
    events: EventsSettings = EventsSettings()
    routing: RoutingSettings = RoutingSettings()
    webhook_delivery: DeliverySettings = DeliverySettings()
    retention: RetentionSettings = RetentionSettings()

    attachments: AttachmentSettings = AttachmentSettings()
    channels: list[ChannelSettings] = Field(default_factory=list)
    agents: list[AgentSettings] = Field(default_factory=list)
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    surveys: SurveySettings = SurveySettings()
    stats: StatsSettings = StatsSettings()
    # When teams answer, per channel (id or type); channels named by none are 24/7.
    business_hours: list[BusinessHoursSettings] = Field(default_factory=list)
    # SLA targets in business time; the first policy that matches a conversation applies.
    sla_policies: list[SlaPolicySettings] = Field(default_factory=list)
    bots: list[BotSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_calendar_per_channel(self) -> Settings:
        Calendars(self.business_hours)  # raises on a channel or rule named twice
        rules = {r.name for r in self.routing.rules}
        for entry in self.business_hours:
            unknown = sorted(set(entry.rules) - rules)
            if unknown:
                raise ValueError(
                    f"business_hours {entry.id}: no routing rule named {', '.join(unknown)}"
                )
        return self

    @property
    def store_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite:///{self.server.data_dir / 'omnigw.db'}"


def embedded_default() -> dict[str, object]:
    """What `omnigw serve` runs with no config file: one webchat channel, one demo agent."""
    return {
        "channels": [{"id": "webchat", "type": "webchat"}],
        "agents": [
            {
                "id": "demo",
                "name": "Demo Agent",
                "languages": ["vi", "en"],
                "capacity": {"total": 20},
                "presence": "online",
            }
        ],
    }


__all__ = ["ChannelIdStr", "Settings"]
