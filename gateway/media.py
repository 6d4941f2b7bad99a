"""Files customers send on Messenger and Zalo, kept for good.

Providers hand over media as URLs on their CDNs, and those expire. A message with such a
part gets a job in the store, written with the message itself (gateway.domain.media);
once the provider has its answer, this worker fetches each file into the attachment
storage and points the part at ``/v1/attachments/{id}``, keeping the provider's URL as
``source_url``. Jobs survive restarts; a file that cannot be fetched is tried again with
backoff, and one that finally fails, or is refused (too large, not what it claims to be,
on a forbidden address), keeps the reason on its part.

Fetching goes only where webhook delivery may go (kernel.netguard): every connection is
checked when it is made, after DNS, so a name that resolves to the gateway's own
networks is refused however it got there (redirects, DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import mimetypes
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpcore
import httpx

from config.schema import AttachmentSettings
from gateway import __version__
from gateway.attachments import (
    Attachments,
    looks_like_html,
    remove_files,
    safe_mime,
    sniff_image,
)
from gateway.domain.media import Recorded, fetchable, record
from gateway.metrics import Metrics
from gateway.store.protocols import Store
from gateway.store.records import MediaJob, to_us
from gateway.store.transaction import Tx
from kernel.models import MediaPart, PartError, utcnow
from kernel.netguard import UnsafeUrl, check_url, forbidden

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
IDLE_POLL = 5.0  # jobs written by another replica are found within this
CHUNK = 64 * 1024
MAX_BACKOFF = 6 * 3600.0


class Failure(Exception):
    """Why a file was not fetched; ``retryable`` when trying later may work."""

    def __init__(self, code: str, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retryable = retryable


# --- the address guard ------------------------------------------------------------------


class AddressForbidden(httpcore.ConnectError):
    """The host resolves only to addresses the gateway may not call."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses kernel.netguard allows
    (checked on the addresses DNS gives at connection time)."""

    def __init__(self, *, allow_private: bool, allow_loopback: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
            )
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        reasons = set()
        for info in infos:
            address = str(info[4][0])
            why = forbidden(
                address, allow_private=self.allow_private, allow_loopback=self.allow_loopback
            )
            if why is None:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            reasons.add(why)
        raise AddressForbidden(f"{host} resolves to a {', '.join(sorted(reasons))} address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressForbidden("unix sockets are not fetched from")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a connection pool that uses :class:`GuardedBackend`."""

    def __init__(self, *, allow_private: bool, allow_loopback: bool) -> None:
        super().__init__(trust_env=False)
        # httpx gives no way to pass a network backend: its pool is replaced by one
        # made the same way, with the guarded backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=20,
            max_keepalive_connections=10,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(
                allow_private=allow_private, allow_loopback=allow_loopback
            ),
        )


def check_address(url: str, *, allow_private: bool, allow_loopback: bool) -> None:
    """What can be told before connecting: the URL's form, and its host when it is an IP
    address. Raises Failure."""
    try:
        check_url(url)
    except UnsafeUrl as exc:
        raise Failure("unsafe_url", str(exc)) from None
    host = urlsplit(url).hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked when it is resolved, at connection
    why = forbidden(str(ip), allow_private=allow_private, allow_loopback=allow_loopback)
    if why is not None:
        raise Failure("unsafe_url", f"{host} is a {why} address")


# --- what a file is -----------------------------------------------------------------------


def check_type(part: MediaPart, data: bytes, served_as: str) -> str:
    """The type to keep the file as; raises Failure when the bytes are not what the part
    says they are (an error page served in place of a photo)."""
    if part.type in ("image", "sticker"):
        found = sniff_image(data)
        if found is None:
            what = "an HTML page" if looks_like_html(data) else f"{served_as or 'unknown'} data"
            raise Failure("unexpected_type", f"the provider served {what}, not an image")
        return found
    name = (part.name or "").lower()
    if looks_like_html(data) and not name.endswith((".html", ".htm")):
        raise Failure("unexpected_type", f"the provider served an HTML page, not a {part.type}")
    if part.type in ("audio", "video") and served_as.startswith("text/"):
        raise Failure("unexpected_type", f"the provider served {served_as}, not a {part.type}")
    if part.type in ("audio", "video") and not served_as.startswith(part.type + "/"):
        return part.mime or served_as or "application/octet-stream"
    return served_as or part.mime or "application/octet-stream"


def name_of(part: MediaPart, url: str) -> str | None:
    if part.name:
        return part.name
    last = unquote(urlsplit(url).path.rsplit("/", 1)[-1]).strip()
    return last[:200] or None


@dataclass(frozen=True)
class Fetched:
    data: bytes
    mime: str
    name: str | None


class MediaFetcher:
    """Fetches one provider file, within the limits."""

    def __init__(
        self, settings: AttachmentSettings, max_bytes: int, client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self.max_bytes = max_bytes
        self.client = client or httpx.AsyncClient(
            transport=GuardedTransport(
                allow_private=settings.allow_private_networks,
                allow_loopback=settings.allow_loopback,
            ),
            timeout=httpx.Timeout(settings.download_timeout, connect=10.0),
            headers={"User-Agent": f"omnichannel-gateway/{__version__} (media)"},
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def fetch(self, part: MediaPart) -> Fetched:
        url = part.url or ""
        try:
            async with asyncio.timeout(self.settings.download_timeout):
                return await self._fetch(part, url)
        except TimeoutError:
            raise Failure(
                "timeout",
                f"the file did not arrive within {self.settings.download_timeout:g} s",
                retryable=True,
            ) from None

    async def _fetch(self, part: MediaPart, url: str) -> Fetched:
        s = self.settings
        for _ in range(MAX_REDIRECTS + 1):
            check_address(
                url, allow_private=s.allow_private_networks, allow_loopback=s.allow_loopback
            )
            try:
                async with self.client.stream("GET", url) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    self._check_status(resp)
                    data = await self._read(resp)
                    served_as = safe_mime(resp.headers.get("content-type"))
            except httpx.ConnectError as exc:
                if isinstance(exc.__cause__, AddressForbidden):
                    raise Failure("unsafe_url", str(exc.__cause__)) from None
                raise Failure("unreachable", f"could not connect: {exc}", retryable=True) from None
            except httpx.TransportError as exc:
                reason = str(exc) or type(exc).__name__
                raise Failure(
                    "unreachable", f"the transfer failed: {reason}", retryable=True
                ) from None
            name = name_of(part, url)
            if served_as == "application/octet-stream":
                # Nothing in particular: what the provider said of it, or its name says.
                served_as = safe_mime(part.mime or mimetypes.guess_type(name or "")[0])
            mime = check_type(part, data, served_as)
            return Fetched(data, mime, name)
        raise Failure("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _check_status(resp: httpx.Response) -> None:
        code = resp.status_code
        if 200 <= code < 300:
            return
        if code == 429 or code >= 500 or code == 408:
            raise Failure("provider_error", f"the provider answered {code}", retryable=True)
        expired = " (the link has expired)" if code in (403, 404, 410) else ""
        raise Failure("not_available", f"the provider answered {code}{expired}")

    async def _read(self, resp: httpx.Response) -> bytes:
        limit = self.max_bytes
        declared = resp.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise Failure(
                "too_large", f"the file is {int(declared)} bytes, over the {limit}-byte limit"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes(CHUNK):
            size += len(chunk)
            if size > limit:
                raise Failure("too_large", f"the file is over the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)


# --- the worker ---------------------------------------------------------------------------


class MediaDownloads:
    """Takes due jobs from the store and fetches their files."""

    def __init__(
        self,
        store: Store,
        attachments: Attachments,
        settings: AttachmentSettings,
        metrics: Metrics,
        fetcher: MediaFetcher | None = None,
    ) -> None:
        self.store = store
        self.attachments = attachments
        self.settings = settings
        self.metrics = metrics
        self.fetcher = fetcher or MediaFetcher(settings, attachments.max_bytes)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._limit = asyncio.Semaphore(settings.download_concurrency)
        self._held: dict[str, int] = {}  # message id -> attempts, of jobs being fetched

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="media-downloads")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.fetcher.aclose()
        # Jobs cut short are due again at once (after a crash, once their hold ends).
        held, self._held = self._held, {}
        now = to_us(utcnow())

        async def release(tx: Tx) -> None:
            for message_id, attempts in held.items():
                await tx.messages.download_again(message_id, attempts, now)

        if held:
            try:
                await self.store.transact(release)
            except Exception:
                log.exception("media downloads: releasing %d job(s) failed", len(held))

    def _hold_seconds(self) -> float:
        # A job's files are fetched at once, each within the timeout: held for longer.
        return self.settings.download_timeout * 2 + 30.0

    def backoff(self, attempts: int) -> float:
        return min(self.settings.download_retry_seconds * 4.0 ** (attempts - 1), MAX_BACKOFF)

    async def _run(self) -> None:
        """Keep up to twice ``download_concurrency`` jobs going (their files share the
        ``download_concurrency`` fetches): a slow file never holds the next jobs back."""
        running: set[asyncio.Task[None]] = set()
        most = self.settings.download_concurrency * 2
        try:
            while True:
                self._wake.clear()
                due = None
                try:
                    if len(running) < most:
                        jobs = await self.store.media_downloads.due(
                            utcnow(), most - len(running), self._hold_seconds()
                        )
                        for job in jobs:
                            task = asyncio.create_task(self._job(job))
                            running.add(task)
                            task.add_done_callback(self._finished(running))
                        if jobs:
                            continue
                        due = await self.store.media_downloads.next_due()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("media downloads: reading the jobs failed")
                wait = IDLE_POLL
                if due is not None:
                    wait = max(0.0, min(wait, (due - utcnow()).total_seconds()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _finished(self, running: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            running.discard(task)
            self._wake.set()  # room for the next job
            if not task.cancelled() and task.exception() is not None:
                log.error("media download job failed: %r", task.exception())

        return done

    async def _job(self, job: MediaJob) -> None:
        message = job.message
        attempt = job.attempts + 1
        indexes = fetchable(message.parts)
        self._held[message.id] = job.attempts
        try:
            results = await asyncio.gather(
                *(self._one(message.channel_id, message.parts[i], attempt) for i in indexes)  # type: ignore[arg-type]
            )
        except asyncio.CancelledError:
            raise  # stopping: released by stop()
        except BaseException:
            self._held.pop(message.id, None)
            raise
        self._held.pop(message.id, None)
        outcomes = {i: part for i, part in zip(indexes, results, strict=True) if part is not None}
        again = len(outcomes) < len(indexes)
        again_at = to_us(utcnow() + timedelta(seconds=self.backoff(attempt))) if again else None

        async def work(tx: Tx) -> Recorded:
            return await record(tx, message.id, outcomes, attempts=attempt, again_at=again_at)

        try:
            recorded = await self.store.transact(work)
        except Exception:
            log.exception("media downloads: recording message %s failed", message.id)
            return
        if recorded.paths:
            await asyncio.to_thread(remove_files, self.attachments.root, recorded.paths)

    async def _one(self, channel_id: str, part: MediaPart, attempt: int) -> MediaPart | None:
        """The part to keep in place of ``part``, or None to try again later."""
        url = part.url or ""
        async with self._limit:
            try:
                fetched = await self.fetcher.fetch(part)
                saved = await self.attachments.save(
                    channel_id,  # type: ignore[arg-type]
                    fetched.data,
                    name=fetched.name,
                    mime=fetched.mime,
                )
            except Exception as error:
                if isinstance(error, Failure):
                    exc = error
                else:
                    log.exception("media download on %s failed", channel_id)
                    exc = Failure("internal", "the file could not be kept", retryable=True)
                last = attempt >= self.settings.download_attempts
                if exc.retryable and not last:
                    log.info("media download of %s: %s; trying again later", channel_id, exc.code)
                    return None
                reason = exc.reason + (f" (after {attempt} tries)" if exc.retryable else "")
                log.warning("media download on %s refused: %s (%s)", channel_id, exc.code, reason)
                self.metrics.media_downloads.labels(exc.code).inc()
                return part.model_copy(
                    update={"source_url": url, "error": PartError(code=exc.code, reason=reason)}
                )
        self.metrics.media_downloads.labels("stored").inc()
        return MediaPart(
            type=part.type,
            url=saved.url,
            name=part.name or saved.name,
            mime=saved.mime,
            size=saved.size,
            attachment_id=saved.attachment_id,
            source_url=url,
        )
