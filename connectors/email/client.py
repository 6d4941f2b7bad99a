"""The only network I/O of the e-mail channel: an IMAP session (aioimaplib) and SMTP
sending (aiosmtplib). Vendor errors become ours here:

    IMAP: ImapError ── ImapAuthError     login refused               (BAD_CREDENTIALS)
                    └─ ImapConfigError   folder missing, no TLS, ... (BAD_CONFIG)
          anything else (OSError, timeouts, aioimaplib errors): reconnect with backoff
    SMTP: connectors.errors (AuthError, RecipientUnavailable, PermanentError, TransientError)

Passwords and access tokens go to the servers and nowhere else: they are not in any
message raised here. OAuth logins (XOAUTH2, OAUTHBEARER) are SASL exchanges written here
with the strings of :mod:`connectors.email.oauth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from aioimaplib import aioimaplib

from connectors.email.oauth import sasl
from connectors.email.settings import ImapSettings, SmtpSettings
from connectors.errors import (
    AuthError,
    PermanentError,
    RecipientUnavailable,
    SendError,
    TransientError,
)

log = logging.getLogger(__name__)

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]", re.IGNORECASE)
_EXISTS = re.compile(rb"^(\d+) EXISTS", re.IGNORECASE)
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)", re.IGNORECASE)
_LITERAL = re.compile(rb"\{(\d+)\}$")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_LOST = [b"connection lost"]
IDLE_DONE_WAIT = 5.0
LOGOUT_WAIT = 2.0
CLOSE_WAIT = 1.0


class _NoLoginLines(logging.Filter):
    """aioimaplib masks the password in its debug log of LOGIN only as written, not as
    quoted on the wire (a password with " or \\ would show): drop those lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return False
        return not (" LOGIN " in text or "AUTHENTICATE" in text)


logging.getLogger("aioimaplib.aioimaplib").addFilter(_NoLoginLines())


class ImapError(Exception):
    """The IMAP server said no."""


class ImapAuthError(ImapError):
    """The server refused the login."""


class ImapConfigError(ImapError):
    """The channel's settings cannot work with this server."""


@dataclass(frozen=True)
class OAuthLogin:
    """How to log in with OAuth: the SASL mechanism, the access token to use, and a fresh
    one in place of a token the server refused (both raise AuthError or TransientError)."""

    mechanism: str
    token: Callable[[], Awaitable[str]]
    refreshed: Callable[[str], Awaitable[str]]


class _Authenticate(aioimaplib.Command):  # type: ignore[misc]
    """AUTHENTICATE with an initial response (SASL-IR). A server refusing the token sends
    a challenge with the error (RFC 7628 3.2.2) and wants an empty answer before its NO."""

    def __init__(self, protocol: Any, mechanism: str, response: str) -> None:
        super().__init__(
            "AUTHENTICATE", protocol.new_tag(), mechanism.upper(), response, loop=protocol.loop
        )
        self._protocol = protocol

    def flush(self) -> None:  # called by aioimaplib after a continuation line only
        self._protocol.transport.write(b"\r\n")


@dataclass(frozen=True)
class Mailbox:
    uidvalidity: int
    uidnext: int | None
    exists: int


def tls_context(ca_file: Any) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _text(lines: list[Any]) -> str:
    return " ".join(
        bytes(line).decode("utf-8", "replace") for line in lines if isinstance(line, bytes)
    )[:300]


class ImapClient:
    """One logged-in IMAP connection with one selected folder."""

    def __init__(
        self,
        settings: ImapSettings,
        *,
        timeout: float,
        keepalive: float,
        oauth: OAuthLogin | None = None,
    ) -> None:
        self.settings = settings
        self.oauth = oauth
        self.timeout = timeout
        self.keepalive = keepalive
        self._imap: aioimaplib.IMAP4 | None = None
        self._lost = asyncio.Event()
        # Set whenever the server announces new mail (EXISTS) in any response; the caller
        # clears it before a search and looks at it again before going idle.
        self.news = False

    @property
    def imap(self) -> aioimaplib.IMAP4:
        if self._imap is None:
            raise ConnectionError("the IMAP connection is not open")
        return self._imap

    def _on_lost(self, exc: Exception | None) -> None:
        self._lost.set()
        if self._imap is not None:  # wake an IDLE wait
            self._imap.protocol.idle_queue.put_nowait(_LOST)

    async def open(self) -> None:
        """Connect, secure and log in."""
        s = self.settings
        context = tls_context(s.ca_file) if s.security != "none" else None
        self._imap = aioimaplib.IMAP4(
            host=s.host,
            port=s.effective_port,
            timeout=self.timeout,
            conn_lost_cb=self._on_lost,
            ssl_context=context if s.security == "tls" else None,
        )
        self._watch_exists()
        await self.imap.wait_hello_from_server()
        if s.security == "starttls":
            assert context is not None
            await self._starttls(context)
        if s.password is None:
            await self._oauth_login()
        else:
            if self.imap.has_capability("LOGINDISABLED"):
                raise ImapConfigError("the server refuses LOGIN here; use security tls or starttls")
            response = await self.imap.login(s.username, s.password.get_secret_value())
            if response.result != "OK":
                raise ImapAuthError(f"IMAP login refused: {_text(response.lines)}")
        if not any(c.startswith("IDLE") for c in self.imap.protocol.capabilities):
            # Some servers list capabilities only after login, unasked.
            await asyncio.wait_for(self.imap.protocol.capability(), self.timeout)
        self._set_keepalive()

    async def _oauth_login(self) -> None:
        """AUTHENTICATE with the access token; once more with a fresh one if refused."""
        if self.oauth is None:
            raise ImapConfigError("no imap.password and no [oauth] login")
        mechanism = self.oauth.mechanism.upper()
        if not self.imap.has_capability(f"AUTH={mechanism}"):
            raise ImapConfigError(f"the server does not offer AUTH={mechanism}")
        try:
            token = await self.oauth.token()
            if await self._authenticate(token):
                return
            if await self._authenticate(await self.oauth.refreshed(token)):
                return
        except AuthError as exc:
            raise ImapAuthError(f"IMAP OAuth login: {exc.reason}") from None
        raise ImapAuthError("IMAP login refused: the server did not accept a fresh access token")

    async def _authenticate(self, token: str) -> bool:
        assert self.oauth is not None
        s = self.settings
        protocol = self.imap.protocol
        response = sasl(self.oauth.mechanism, s.username, token, s.host, s.effective_port)
        command = _Authenticate(protocol, self.oauth.mechanism, response)
        done = await asyncio.wait_for(protocol.execute(command, scrub=response), self.timeout)
        if done.result != "OK":
            return False
        protocol.state = aioimaplib.AUTH
        return True

    def _watch_exists(self) -> None:
        # aioimaplib drops untagged EXISTS outside IDLE: mail announced during a FETCH
        # would otherwise wait for the next IDLE re-issue.
        protocol = self.imap.protocol
        original = protocol._untagged_response

        def spy(line: bytes) -> Any:
            if line.rstrip().upper().endswith(b"EXISTS"):
                self.news = True
            return original(line)

        protocol._untagged_response = spy

    async def _starttls(self, context: ssl.SSLContext) -> None:
        protocol = self.imap.protocol
        if not self.imap.has_capability("STARTTLS"):
            raise ImapConfigError("the server does not offer STARTTLS")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await asyncio.wait_for(protocol.execute(command), self.timeout)
        if response.result != "OK":
            raise ImapError(f"STARTTLS refused: {_text(response.lines)}")
        loop = asyncio.get_running_loop()
        transport = await asyncio.wait_for(
            loop.start_tls(
                protocol.transport, protocol, context, server_hostname=self.settings.host
            ),
            self.timeout,
        )
        protocol.transport = transport
        # What the server offered before TLS means nothing now (RFC 3501 6.2.1).
        await asyncio.wait_for(protocol.capability(), self.timeout)

    def _set_keepalive(self) -> None:
        transport = self.imap.protocol.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return
        idle = max(1, int(self.keepalive))
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, idle // 3))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)

    @property
    def supports_idle(self) -> bool:
        return bool(self.imap.has_capability("IDLE"))

    async def select(self) -> Mailbox:
        response = await self.imap.select(self.settings.folder)
        if response.result != "OK":
            raise ImapConfigError(
                f"cannot open folder {self.settings.folder!r}: {_text(response.lines)}"
            )
        validity = uidnext = None
        exists = 0
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            if m := _UIDVALIDITY.search(line):
                validity = int(m.group(1))
            if m := _UIDNEXT.search(line):
                uidnext = int(m.group(1))
            if m := _EXISTS.match(line):
                exists = int(m.group(1))
        if validity is None:
            raise ImapError("the server sent no UIDVALIDITY")
        return Mailbox(validity, uidnext, exists)

    async def _search(self, *criteria: str) -> list[int]:
        response = await self.imap.uid_search(*criteria, charset=None)
        if response.result != "OK":
            raise ImapError(f"UID SEARCH failed: {_text(response.lines)}")
        uids: set[int] = set()
        for line in response.lines[:-1]:
            if isinstance(line, bytes):
                uids.update(int(t) for t in line.split() if t.isascii() and t.isdigit())
        return sorted(uids)

    async def uids_after(self, last_uid: int) -> list[int]:
        # "n:*" always matches the newest message, even below n: drop what is not new.
        return [u for u in await self._search("UID", f"{last_uid + 1}:*") if u > last_uid]

    async def uids_since(self, day: date) -> list[int]:
        return await self._search("SINCE", f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}")

    async def size_of(self, uid: int) -> int | None:
        response = await self.imap.uid("fetch", str(uid), "(UID RFC822.SIZE)")
        if response.result != "OK":
            raise ImapError(f"UID FETCH failed: {_text(response.lines)}")
        for line in response.lines:
            if isinstance(line, bytes) and (m := _SIZE.search(line)):
                return int(m.group(1))
        return None  # expunged meanwhile

    async def fetch(self, uid: int, item: str = "BODY.PEEK[]") -> bytes | None:
        """One message (or part of it) by UID; None when it is gone."""
        response = await self.imap.uid("fetch", str(uid), f"(UID {item})")
        if response.result != "OK":
            raise ImapError(f"UID FETCH failed: {_text(response.lines)}")
        lines = response.lines
        for i, line in enumerate(lines[:-1]):
            if isinstance(line, bytes) and _LITERAL.search(line):
                data = lines[i + 1]
                if isinstance(data, bytes | bytearray):
                    return bytes(data)
        return None

    async def mark_seen(self, uid: int) -> None:
        response = await self.imap.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)")
        if response.result != "OK":
            raise ImapError(f"UID STORE failed: {_text(response.lines)}")

    async def idle(self, reissue: float) -> bool:
        """IDLE until the server announces new mail (True) or ``reissue`` seconds pass."""
        imap = self.imap
        task = await imap.idle_start(timeout=reissue)
        try:
            while True:
                push = await imap.wait_server_push(timeout=reissue + self.timeout)
                if self._lost.is_set() or push is _LOST:
                    raise ConnectionError("the IMAP connection was lost while idle")
                if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    return False
                if any(isinstance(line, bytes) and b"EXISTS" in line.upper() for line in push):
                    return True
        finally:
            if not self._lost.is_set() and imap.has_pending_idle():
                imap.idle_done()
                with contextlib.suppress(Exception):  # a silent server must not hold us up
                    await asyncio.wait_for(task, min(self.timeout, IDLE_DONE_WAIT))
            if not task.done():
                task.cancel()

    async def noop(self) -> None:
        response = await self.imap.noop()
        if response.result != "OK":
            raise ImapError(f"NOOP failed: {_text(response.lines)}")

    async def close(self) -> None:
        """Log out if the server can still answer; the socket is closed in any case."""
        if self._imap is None:
            return
        imap, self._imap = self._imap, None
        try:
            # LOGOUT would queue behind an IDLE still pending (DONE unanswered, or never sent
            # when the cancel came during idle_start) and could only time out.
            if not self._lost.is_set() and not imap.has_pending_idle():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(imap.logout(), LOGOUT_WAIT)
        finally:
            # Also when a repeated cancel (cancel_and_wait) cuts the logout short: a socket
            # left open here stays open until the garbage collector finds it, much later.
            await self._shut(imap)

    async def _shut(self, imap: aioimaplib.IMAP4) -> None:
        """Close the socket now and end aioimaplib's own tasks and timer."""
        if imap._idle_waiter is not None:  # the IDLE re-issue timer
            imap._idle_waiter.cancel()
        # A connection still being made would otherwise open a socket after we are gone.
        tasks = {imap._client_task, *imap.tasks, *imap.protocol.tasks}
        for task in tasks:
            task.cancel()
        transport = imap.protocol.transport
        if transport is not None:
            transport.abort()  # not close(): over TLS that waits for the server's goodbye
            # connection_lost comes once the socket is closed (not at all mid-STARTTLS).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), CLOSE_WAIT)
        await asyncio.wait(tasks, timeout=CLOSE_WAIT)


# --- SMTP ---------------------------------------------------------------------------------


def _smtp_error(code: int, message: str, what: str) -> SendError:
    text = f"{what}: {code} {message}".strip()[:500]
    enhanced = re.match(r"\s*([245])\.(\d{1,3})\.(\d{1,3})", message or "")
    if 400 <= code < 500:
        return TransientError(text, code="smtp_temporary")
    if enhanced and enhanced.group(1) == "5" and enhanced.group(2) == "1":
        return RecipientUnavailable(text)  # 5.1.x: bad destination mailbox or address
    if what == "recipient refused" and code >= 500:
        return RecipientUnavailable(text)
    if code >= 500:
        return PermanentError(text, code="smtp_rejected")
    return TransientError(text, code="smtp_unexpected")


def _smtp(settings: SmtpSettings, timeout: float, oauth: bool) -> aiosmtplib.SMTP:
    s = settings
    return aiosmtplib.SMTP(
        hostname=s.host,
        port=s.effective_port,
        # With OAuth the login is ours (after connecting): aiosmtplib knows no OAUTHBEARER.
        username=None if oauth else s.username,
        password=s.password.get_secret_value() if s.password is not None else None,
        timeout=timeout,
        use_tls=s.security == "tls",
        # False, not None: aiosmtplib would otherwise upgrade whenever it is offered.
        start_tls=s.security == "starttls",
        tls_context=tls_context(s.ca_file) if s.security != "none" else None,
    )


async def _sasl(smtp: aiosmtplib.SMTP, mechanism: str, user: str, token: str) -> None:
    """AUTH with an initial response; a refusal's error challenge gets an empty answer."""
    host, port = smtp.hostname or "", smtp.port or 0
    initial = sasl(mechanism, user, token, host, port).encode("ascii")
    response = await smtp.execute_command(b"AUTH", mechanism.upper().encode(), initial)
    if response.code == 334:
        response = await smtp.execute_command(b"")
    if response.code != 235:
        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)


async def _login(smtp: aiosmtplib.SMTP, settings: SmtpSettings, oauth: OAuthLogin | None) -> None:
    """The OAuth login of a connected session; once more with a fresh token if refused."""
    if oauth is None or settings.username is None:
        return
    mechanism = oauth.mechanism.upper()
    await smtp.ehlo()
    if mechanism.lower() not in smtp.server_auth_methods:
        raise AuthError(f"the SMTP server does not offer AUTH {mechanism}")
    token = await oauth.token()
    try:
        await _sasl(smtp, mechanism, settings.username, token)
    except aiosmtplib.SMTPAuthenticationError:
        await _sasl(smtp, mechanism, settings.username, await oauth.refreshed(token))


async def check_smtp(
    settings: SmtpSettings,
    timeout: float,  # noqa: ASYNC109 (handed to aiosmtplib, which times each command)
    oauth: OAuthLogin | None = None,
) -> None:
    """Connect and log in without sending: raises like :func:`send_mail`."""
    try:
        smtp = _smtp(settings, timeout, oauth is not None)
        async with smtp:
            await _login(smtp, settings, oauth)
            await smtp.noop()
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise AuthError(f"SMTP authentication failed: {exc.code} {exc.message}"[:300]) from None
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
        raise TransientError(
            f"SMTP server unreachable: {type(exc).__name__}", code="smtp_unreachable"
        ) from None


async def send_mail(
    settings: SmtpSettings,
    message: EmailMessage,
    *,
    sender: str,
    recipients: list[str],
    timeout: float,  # noqa: ASYNC109 (handed to aiosmtplib, which times each command)
    oauth: OAuthLogin | None = None,
) -> None:
    """Send one message; raises the errors of :mod:`connectors.errors`."""
    try:
        smtp = _smtp(settings, timeout, oauth is not None)
        async with smtp:
            await _login(smtp, settings, oauth)
            await smtp.send_message(message, sender=sender, recipients=recipients)
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise AuthError(f"SMTP authentication failed: {exc.code} {exc.message}"[:300]) from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients
        if refused and all(r.code >= 500 for r in refused):
            first = refused[0]
            raise _smtp_error(first.code, first.message, "recipient refused") from None
        first_msg = refused[0].message if refused else ""
        code = refused[0].code if refused else 451
        raise _smtp_error(code, first_msg, "recipient refused") from None
    except aiosmtplib.SMTPRecipientRefused as exc:
        raise _smtp_error(exc.code, exc.message, "recipient refused") from None
    except aiosmtplib.SMTPSenderRefused as exc:
        raise _smtp_error(exc.code, exc.message, "sender refused") from None
    except aiosmtplib.SMTPDataError as exc:
        raise _smtp_error(exc.code, exc.message, "message refused") from None
    except aiosmtplib.SMTPNotSupported as exc:
        raise TransientError(f"SMTP server: {exc}"[:300], code="smtp_unsupported") from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _smtp_error(exc.code, exc.message, "SMTP server said") from None
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
        raise TransientError(
            f"SMTP server unreachable: {type(exc).__name__}", code="smtp_unreachable"
        ) from None
