"""The gateway's Prometheus metrics, with prometheus_client.

Each gateway has a registry of its own (several run in one test process; the library's
global one is never used). What the services count or time is an instrument here, bound
once to its labels by whoever uses it; what is read rather than counted (sockets, channel
states, each webhook endpoint's backlog) is read when scraped, through the callables the
gateway hands over (`watch`); what only the store knows (the queue) is read by `refresh`
before each scrape.

Labels are of bounded cardinality: a channel id, a webhook endpoint id, a route's
template, a status class, a state from a fixed vocabulary; never a customer's value, a
URL or a token. Names exist once measured from outside: a metric is added, never renamed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from connectors.base import HealthState

log = logging.getLogger(__name__)

# A `_created` sample beside every counter doubles the series for nothing an alert uses.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Request durations (seconds): from a health check to a slow page of history.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From a customer's message reaching the gateway to it being stored (then acknowledged):
# a batch's fsync, or a wait for the store.
INGEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# From an event's commit to its delivery: milliseconds while all is well, hours through
# the retry schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h).
DELIVERY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
    7200.0,
    36000.0,
    86400.0,
)
WEBHOOK_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Methods kept as they are in the `method` label; any other word is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The `route` of a request that matched none (404, or a method a route does not allow).
UNMATCHED = "unmatched"
# A probe of the store that takes longer is left out of that scrape.
REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class ChannelState:
    """A running channel as /metrics shows it."""

    channel: str
    type: str
    state: str


@dataclass(frozen=True)
class EndpointBacklog:
    """What a webhook endpoint's worker in this process still owes."""

    endpoint: str
    # Events in the log after its cursor (not accounted for yet, whatever their type).
    events: int
    retrying: int  # deliveries waiting for a retry
    inflight: int  # requests sent and not answered yet
    oldest_seconds: float  # age of the oldest event it has read and not settled; 0: none


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # --- kept from the first version (their names are measured from outside) ----
        self.inbound_messages = Counter(
            "omnigw_inbound_messages_total",
            "Customer messages stored, by channel.",
            ["channel"],
            registry=r,
        )
        self.inbound_duplicates = Counter(
            "omnigw_inbound_duplicates_total",
            "Inbound messages recognised as already stored.",
            ["channel"],
            registry=r,
        )
        self.outbound_sent = Counter(
            "omnigw_outbound_sent_total",
            "Outbound messages the channel accepted.",
            ["channel"],
            registry=r,
        )
        self.outbound_failed = Counter(
            "omnigw_outbound_failed_total",
            "Outbound messages that failed for good.",
            ["channel"],
            registry=r,
        )
        self.outbound_deferred = Counter(
            "omnigw_outbound_deferred_total",
            "Outbound send attempts deferred for a retry.",
            ["channel"],
            registry=r,
        )
        self.http_requests = Counter(
            "omnigw_http_requests_total",
            "HTTP API requests, by status class.",
            ["code"],
            registry=r,
        )
        # --- latencies ---------------------------------------------------------------
        self.http_duration = Histogram(
            "omnigw_http_request_duration_seconds",
            "Seconds from a request's arrival to its answer, by method and route template "
            "(event streams and sockets are not timed).",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.ingest_ack = Histogram(
            "omnigw_ingest_ack_seconds",
            "Seconds from a customer message reaching the gateway's ingest to it being "
            "stored, when the channel acknowledges it, by channel.",
            ["channel"],
            buckets=INGEST_BUCKETS,
            registry=r,
        )
        self.webhook_delivery = Histogram(
            "omnigw_webhook_delivery_seconds",
            "Seconds from an event's commit to its successful delivery (retries "
            "included), by webhook endpoint.",
            ["endpoint"],
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.webhook_request = Histogram(
            "omnigw_webhook_request_duration_seconds",
            "Seconds each webhook request took, answered or not, by endpoint.",
            ["endpoint"],
            buckets=WEBHOOK_REQUEST_BUCKETS,
            registry=r,
        )
        self.webhook_attempts = Counter(
            "omnigw_webhook_attempts_total",
            "Webhook requests by endpoint and result: succeeded, retry (failed, another "
            "attempt is due), dead (failed, no attempt left), disabled (410 Gone).",
            ["endpoint", "result"],
            registry=r,
        )
        self.media_downloads = Counter(
            "omnigw_media_downloads_total",
            "Customers' files fetched from a provider's CDN, by outcome: stored, or why "
            "one was given up (not_available, provider_error, unreachable, timeout, "
            "too_large, unexpected_type, unsafe_url, too_many_redirects, internal).",
            ["outcome"],
            registry=r,
        )
        # --- the queue, read from the store before each scrape ----------------------
        self.queued = Gauge(
            "omnigw_queued_conversations",
            "Conversations waiting in the queue for an agent, by channel (the store's: "
            "every replica shows the same).",
            ["channel"],
            registry=r,
        )
        self.queue_oldest = Gauge(
            "omnigw_queue_oldest_wait_seconds",
            "How long the longest-waiting queued conversation has waited, by channel.",
            ["channel"],
            registry=r,
        )
        self._probes: list[Callable[[], Awaitable[None]]] = []
        # Instruments bound to their labels, by label values: binding costs more than
        # counting, and these are used for every message and request.
        self._by_channel: dict[str, tuple[Histogram, Counter, Counter]] = {}
        self._by_code: dict[int, Counter] = {}
        self._by_route: dict[tuple[str, str], Histogram] = {}
        # The process's own figures (CPU, memory, open files; Python's version and GC).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

    # --- what is counted on the hot paths --------------------------------------------

    def ingested(self, channel: str, seconds: float, *, duplicate: bool) -> None:
        """A customer message stored (or recognised as stored) in ``seconds``."""
        bound = self._by_channel.get(channel)
        if bound is None:
            bound = self._by_channel[channel] = (
                self.ingest_ack.labels(channel),
                self.inbound_messages.labels(channel),
                self.inbound_duplicates.labels(channel),
            )
        latency, stored, duplicates = bound
        latency.observe(seconds)
        (duplicates if duplicate else stored).inc()

    def answered(self, status: int, route: tuple[str, str] | None, seconds: float) -> None:
        """An HTTP request answered; ``route`` (method, template) None: not timed."""
        code = status // 100
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = self.http_requests.labels(f"{code}xx")
        counter.inc()
        if route is not None:
            histogram = self._by_route.get(route)
            if histogram is None:
                histogram = self._by_route[route] = self.http_duration.labels(*route)
            histogram.observe(seconds)

    # --- what is read when scraped ------------------------------------------------------

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge without labels, read when scraped."""
        Gauge(name, documentation, registry=self.registry).set_function(read)

    def watch(
        self,
        *,
        channels: Callable[[], Iterable[ChannelState]],
        endpoints: Callable[[], Iterable[EndpointBacklog]],
    ) -> None:
        """Channels' states and webhook endpoints' backlogs, read when scraped."""
        self.registry.register(_Watched(channels, endpoints))

    def probe(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Something to read before each scrape (from the store, say)."""
        self._probes.append(refresh)

    async def refresh(self) -> None:
        """Run the probes; one that fails or hangs is logged and left out of this scrape."""
        for refresh in self._probes:
            try:
                async with asyncio.timeout(REFRESH_SECONDS):
                    await refresh()
            except Exception as exc:
                log.warning("metrics: a probe failed: %s", type(exc).__name__)

    def set_queue(self, queue: dict[str, tuple[int, float | None]]) -> None:
        """The queue as it stands: channel -> (length, seconds the oldest has waited).
        Channels not given are gone from it."""
        self.queued.clear()
        self.queue_oldest.clear()
        for channel, (length, oldest) in queue.items():
            self.queued.labels(channel).set(length)
            self.queue_oldest.labels(channel).set(oldest or 0.0)

    def forget_endpoint(self, endpoint: str) -> None:
        """A webhook endpoint was deleted: its series go with it."""
        for metric in (self.webhook_delivery, self.webhook_request, self.webhook_attempts):
            metric.remove_by_labels({"endpoint": endpoint})

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition, in the format the scraper asks for (Prometheus text, or
        OpenMetrics), and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class _Watched:
    """Families made from the gateway's state each time they are collected."""

    def __init__(
        self,
        channels: Callable[[], Iterable[ChannelState]],
        endpoints: Callable[[], Iterable[EndpointBacklog]],
    ) -> None:
        self._channels = channels
        self._endpoints = endpoints

    def describe(self) -> list[Metric]:
        return []  # their label values exist only when collected

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "omnigw_channel_state",
            "1 for the state each running channel is in, 0 for the others.",
            labels=["channel", "type", "state"],
        )
        for channel in self._channels():
            for value in HealthState:
                state.add_metric(
                    [channel.channel, channel.type, value.value],
                    1.0 if channel.state == value.value else 0.0,
                )
        yield state
        families = {
            "events": GaugeMetricFamily(
                "omnigw_webhook_backlog_events",
                "Events in the log after a webhook endpoint's cursor, by endpoint (its "
                "worker's replica only).",
                labels=["endpoint"],
            ),
            "retrying": GaugeMetricFamily(
                "omnigw_webhook_retrying_deliveries",
                "Deliveries waiting for a retry, by webhook endpoint.",
                labels=["endpoint"],
            ),
            "inflight": GaugeMetricFamily(
                "omnigw_webhook_inflight_requests",
                "Webhook requests sent and not answered yet, by endpoint.",
                labels=["endpoint"],
            ),
            "oldest_seconds": GaugeMetricFamily(
                "omnigw_webhook_oldest_wait_seconds",
                "Age of the oldest event a webhook endpoint has read and not settled "
                "(in flight, waiting behind its conversation, or for a retry); 0 when none.",
                labels=["endpoint"],
            ),
        }
        for backlog in self._endpoints():
            for field, family in families.items():
                family.add_metric([backlog.endpoint], float(getattr(backlog, field)))
        yield from families.values()
