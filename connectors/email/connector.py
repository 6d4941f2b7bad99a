"""The e-mail connector: IMAP in (IDLE or polling, checkpointed by UID), SMTP out.

Inbound, per message, in UID order: fetch with BODY.PEEK -> parse -> skip (our own mail,
auto-replies, bulk: kept raw with the reason) or apply (bounce: the original message is
marked failed) or store (ingest) -> only then advance the checkpoint (UIDVALIDITY, last
UID) and, if the channel asks for it, set \\Seen. A crash in between repeats the message,
and ingest drops the repeat by its Message-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import JsonValue, ValidationError

from connectors.base import Capability, HealthState, PollingConnector, cancel_and_wait
from connectors.email import token
from connectors.email.classify import is_mail_system
from connectors.email.client import (
    ImapAuthError,
    ImapClient,
    ImapConfigError,
    Mailbox,
    OAuthLogin,
    check_smtp,
    send_mail,
)
from connectors.email.html import rewrite_cids
from connectors.email.oauth import OAuthTokens
from connectors.email.offload import parse_off_loop
from connectors.email.parse import ParsedMail, ParseError, TooManyParts
from connectors.email.quotes import extract_reply
from connectors.email.render import (
    Draft,
    OutgoingFile,
    RenderError,
    checked_address,
    render,
    reply_subject,
    thread_subject,
    threading,
)
from connectors.email.settings import EmailSettings
from connectors.errors import (
    AuthError,
    PermanentError,
    RecipientUnavailable,
    SendError,
    TransientError,
)
from kernel.envelope import InboundMessage, OutboundMessage, Sender, SendReceipt, StatusUpdate
from kernel.ids import ChannelId, ConversationId
from kernel.models import (
    AuthorType,
    ChannelType,
    MediaPart,
    MessageError,
    MessageStatus,
    Part,
    TextPart,
)
from kernel.secrets import Keyring, SecretBox
from kernel.texts import system_text

log = logging.getLogger(__name__)

RAW_KEEP_MAX = 1024 * 1024  # raw mail kept for skipped messages is cut here
CC_MAX = 50  # addresses kept from a mail's Cc and put in a reply's
SMTP_RECHECK_INITIAL = 30.0
SMTP_RECHECK_MAX = 600.0


class EmailConnector(PollingConnector):
    type: ClassVar[ChannelType] = ChannelType.EMAIL
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.TEXT, Capability.IMAGE, Capability.AUDIO, Capability.VIDEO, Capability.FILE}
    )

    def __init__(
        self,
        settings: EmailSettings,
        key: bytes | Keyring,
        *,
        http_client: Callable[[], httpx.AsyncClient] | None = None,
        oauth_keys: bytes | Keyring | None = None,
    ) -> None:
        super().__init__(ChannelId(settings.id))
        self.settings = settings
        self._key = key
        self._http_factory = http_client
        self._http: httpx.AsyncClient | None = None
        self.oauth: OAuthTokens | None = None
        if settings.oauth is not None:
            if oauth_keys is None:
                raise ValueError("an OAuth login needs keys to seal its tokens with")
            self.oauth = OAuthTokens(
                self.channel_id,
                settings.oauth,
                SecretBox(oauth_keys),
                lambda: self.sink,
                http_client or httpx.AsyncClient,
            )
        self._checkpoint: dict[str, int] | None = None
        self._imap_up = False
        self._imap_refused = False
        self._closing = False
        self._smtp_recheck: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        return self.settings.address

    @property
    def checkpoint_key(self) -> str:
        imap = self.settings.imap
        return f"imap:{imap.username}:{imap.folder}"

    async def aclose(self) -> None:
        self._closing = True
        await cancel_and_wait(self._smtp_recheck)
        await super().aclose()  # cancels the IMAP task the same way
        if self.oauth is not None:
            await self.oauth.aclose()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def set_health(self, state: HealthState, detail: str | None = None) -> None:
        super().set_health(state, detail)
        # The send path marks the channel BAD_CREDENTIALS on an SMTP auth failure and then
        # holds its messages without trying: check the SMTP login now and then, and report
        # the channel healthy again once it works.
        smtp_refused = state == HealthState.BAD_CREDENTIALS and not self._imap_refused
        idle = self._smtp_recheck is None or self._smtp_recheck.done()
        if smtp_refused and idle and not self._closing:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to schedule
                self._smtp_recheck = asyncio.get_running_loop().create_task(
                    self._recheck_smtp(), name=f"smtp-recheck:{self.channel_id}"
                )

    async def _recheck_smtp(self) -> None:
        delay = SMTP_RECHECK_INITIAL
        while self.health.state == HealthState.BAD_CREDENTIALS and not self._imap_refused:
            await asyncio.sleep(delay)
            delay = min(delay * 2, SMTP_RECHECK_MAX)
            try:
                await check_smtp(
                    self.settings.smtp, self.settings.timeout_seconds, self._smtp_login()
                )
            except AuthError:
                continue
            except SendError as exc:
                log.info("channel %s: SMTP check: %s", self.channel_id, exc.reason)
                continue
            if self.health.state == HealthState.BAD_CREDENTIALS and not self._imap_refused:
                self.set_health(
                    HealthState.CONNECTED if self._imap_up else HealthState.TRANSIENT_DISCONNECT,
                    None if self._imap_up else "IMAP reconnecting",
                )
            return

    def _login(self) -> OAuthLogin | None:
        oauth = self.oauth
        if oauth is None:
            return None
        return OAuthLogin(oauth.settings.mechanism, oauth.access, oauth.refresh)

    def _smtp_login(self) -> OAuthLogin | None:
        return self._login() if self.settings.smtp_oauth else None

    # --- inbound: the session ----------------------------------------------------------

    async def run_once(self) -> None:
        if self._closing:
            raise asyncio.CancelledError
        s = self.settings
        client = ImapClient(
            s.imap, timeout=s.timeout_seconds, keepalive=s.keepalive_seconds, oauth=self._login()
        )
        try:
            try:
                await client.open()
                box = await client.select()
            except ImapAuthError:
                self._imap_refused = True
                self.set_health(HealthState.BAD_CREDENTIALS, "IMAP login was refused")
                raise
            except ImapConfigError as exc:
                self.set_health(HealthState.BAD_CONFIG, str(exc))
                raise
            await self._prepare(client, box)
            self._imap_refused = False
            self._imap_up = True
            self.set_health(HealthState.CONNECTED)
            use_idle = s.idle and client.supports_idle
            while not self._closing:
                await self._sync(client)
                if use_idle:
                    if not client.news:
                        await client.idle(s.idle_reissue_seconds)
                else:
                    await asyncio.sleep(s.poll_interval_seconds)
                    await client.noop()
            raise asyncio.CancelledError  # closing: a swallowed cancel must not reconnect
        finally:
            self._imap_up = False
            await client.close()

    async def _prepare(self, client: ImapClient, box: Mailbox) -> None:
        """Load the checkpoint; start or restart it when there is none or UIDVALIDITY moved."""
        saved = await self.sink.load_state(self.channel_id, self.checkpoint_key)
        same = isinstance(saved, dict) and saved.get("uidvalidity") == box.uidvalidity
        last = saved.get("last_uid") if isinstance(saved, dict) else None
        if same and isinstance(last, int) and last >= 0:
            self._checkpoint = {"uidvalidity": box.uidvalidity, "last_uid": last}
            return
        if saved is not None:
            log.warning(
                "channel %s: UIDVALIDITY of %s changed; reading the last %d days again "
                "(messages already stored are skipped by Message-ID)",
                self.channel_id,
                self.settings.imap.folder,
                self.settings.initial_sync_days,
            )
        days = self.settings.initial_sync_days
        if days > 0:
            since = (datetime.now(UTC) - timedelta(days=days)).date()
            uids = await client.uids_since(since)
            base = uids[0] - 1 if uids else await self._highest_uid(client, box)
        else:
            base = await self._highest_uid(client, box)
        await self._save_checkpoint(box.uidvalidity, base)

    async def _highest_uid(self, client: ImapClient, box: Mailbox) -> int:
        if box.uidnext is not None:
            return box.uidnext - 1
        uids = await client.uids_after(0)
        return uids[-1] if uids else 0

    async def _save_checkpoint(self, uidvalidity: int, last_uid: int) -> None:
        value = {"uidvalidity": uidvalidity, "last_uid": last_uid}
        await self.sink.save_state(self.channel_id, self.checkpoint_key, value)
        self._checkpoint = value

    async def _sync(self, client: ImapClient) -> None:
        """Take every message after the checkpoint, until the server shows nothing new."""
        assert self._checkpoint is not None
        while True:
            client.news = False
            uids = await client.uids_after(self._checkpoint["last_uid"])
            if not uids:
                if not client.news:
                    return
                continue
            for uid in uids:
                await self._take(client, uid)
                await self._save_checkpoint(self._checkpoint["uidvalidity"], uid)
                if self.settings.mark_seen:
                    await client.mark_seen(uid)

    async def _take(self, client: ImapClient, uid: int) -> None:
        size = await client.size_of(uid)
        if size is None:
            return  # expunged since the search
        if size > self.settings.max_message_bytes:
            headers = await client.fetch(uid, "BODY.PEEK[HEADER]") or b""
            await self._keep(
                headers,
                f"a message of {size} bytes is over max_message_bytes "
                f"({self.settings.max_message_bytes}); only its headers are kept",
            )
            return
        raw = await client.fetch(uid)
        if raw is not None:
            await self.handle_raw(raw)

    async def _keep(self, raw: bytes, reason: str) -> None:
        await self.sink.keep_raw(self.channel_id, "email", raw[:RAW_KEEP_MAX], reason)

    # --- inbound: one message ------------------------------------------------------------

    async def handle_raw(self, raw: bytes) -> None:
        """Handle one received message; returns once it is stored, applied or kept raw."""
        try:
            mail = await parse_off_loop(
                raw,
                max_attachment_bytes=self.settings.max_attachment_bytes,
                max_parts=self.settings.max_message_parts,
            )
        except TooManyParts as exc:
            await self._keep(raw, f"not parsed: {exc}")
            return
        except ParseError as exc:
            await self._keep(raw, f"unreadable mail: {exc}")
            return
        own = self._own_reason(mail)
        if own is not None:
            await self._keep(raw, own)
            return
        if mail.kind == "bounce":
            await self._bounce(mail, raw)
            return
        if mail.kind != "message":
            kind = mail.kind.replace("_", " ")
            await self._keep(raw, f"{kind}: {mail.kind_reason}; never opens a conversation")
            return
        if mail.from_address is None:
            await self._keep(raw, "the From header names no address that could be answered")
            return
        if await self.sink.known(self.channel_id, mail.external_id):
            return  # read again (a resync, or a restart before the checkpoint): stored once
        try:
            inbound = await self._inbound(mail, raw)
        except (ValidationError, ValueError) as exc:
            log.info("channel %s: message not usable: %s", self.channel_id, exc)
            await self._keep(raw, f"cannot be stored as a message: {type(exc).__name__}")
            return
        await self.sink.ingest(inbound)

    def _own_reason(self, mail: ParsedMail) -> str | None:
        """Loop prevention: mail we sent ourselves is never taken as a customer's."""
        if mail.from_address == self.address:
            return "sent from this channel's own address"
        if mail.message_id and token.read_message_id(self._key, mail.message_id):
            return "a message this gateway sent"
        if self.address in mail.x_loop:
            return "X-Loop names this channel's address"
        return None

    async def _bounce(self, mail: ParsedMail, raw: bytes) -> None:
        bounce = mail.bounce
        assert bounce is not None
        changed: list[Any] = []
        if bounce.failed and bounce.original_ids:
            changed = await self.sink.update_status(
                StatusUpdate(
                    channel_id=self.channel_id,
                    status=MessageStatus.FAILED,
                    external_ids=list(bounce.original_ids),
                    error=MessageError(code="bounced", reason=bounce.reason, retryable=False),
                )
            )
        what = "failure" if bounce.failed else "delay notice"
        await self._keep(
            raw, f"delivery {what} ({mail.kind_reason}); {len(changed)} sent message(s) marked"
        )

    def _hint(self, mail: ParsedMail) -> ConversationId | None:
        for ref in mail.thread_refs:
            found = token.read_message_id(self._key, ref)
            if found is not None:
                return ConversationId(found.conversation_id)
        for address in mail.recipients:
            conv = token.read_plus_address(self._key, address, self.address)
            if conv is not None:
                return ConversationId(conv)
        return None

    async def _inbound(self, mail: ParsedMail, raw: bytes) -> InboundMessage:
        assert mail.from_address is not None
        reply = extract_reply(mail.text)
        text = reply.text.strip()
        notes: list[str] = []
        files: list[Part] = []
        cid_urls: dict[str, str] = {}
        for att in mail.attachments:
            saved = await self._save(att.data, att.name, att.mime)
            if saved is None:
                notes.append(f"[File not kept: {att.name}, {len(att.data)} bytes: too large]")
                continue
            files.append(saved)
            if att.content_id and saved.url:
                cid_urls[att.content_id] = saved.url
        for skipped in mail.skipped:
            notes.append(f"[File not kept: {skipped.name}, {skipped.size} bytes: {skipped.reason}]")
        extras: list[Part] = []
        if mail.html:
            page = rewrite_cids(mail.html, cid_urls).encode("utf-8")
            saved = await self._save(page, "message.html", "text/html")
            if saved is not None:
                extras.append(saved)
        if self.settings.keep_original:
            saved = await self._save(raw, "original.eml", "message/rfc822")
            if saved is not None:
                extras.append(saved)
        if not text and not files:
            text = mail.text.strip() or mail.subject or "(empty message)"
        body = "\n\n".join(t for t in [text, "\n".join(notes)] if t)
        parts: list[Part] = [TextPart(text=body)] if body else []
        parts += files + extras
        return InboundMessage(
            channel_id=self.channel_id,
            external_id=mail.external_id,
            sender=Sender(
                external_id=mail.from_address,
                display_name=mail.from_name,
                email=mail.from_address,
                verified=True,
            ),
            parts=parts,
            reply_to_external_id=mail.in_reply_to[0] if mail.in_reply_to else None,
            thread_refs=mail.thread_refs,
            conversation_hint=self._hint(mail),
            subject=mail.subject,
            sent_at=mail.date,
            metadata=self._metadata(mail),
        )

    def _metadata(self, mail: ParsedMail) -> dict[str, JsonValue]:
        """The Cc of a received mail, without this mailbox (or its plus-addresses)."""
        cc: list[JsonValue] = []
        for name, addr in mail.cc:
            if not self._ours(addr) and addr != mail.from_address and len(cc) < CC_MAX:
                cc.append({"email": addr, "name": name} if name else {"email": addr})
        return {"cc": cc} if cc else {}

    def _ours(self, address: str) -> bool:
        local, _, domain = self.address.partition("@")
        value = address.lower()
        return value == self.address or (
            value.endswith("@" + domain) and value.startswith(local + "+")
        )

    async def _save(self, data: bytes, name: str, mime: str) -> MediaPart | None:
        try:
            return await self.sink.save_attachment(self.channel_id, data, name=name, mime=mime)
        except ValueError as exc:  # over the gateway's size limit
            log.info("channel %s: file %s not kept: %s", self.channel_id, name, exc)
            return None

    # --- outbound ------------------------------------------------------------------------

    async def send(self, outbound: OutboundMessage) -> SendReceipt:
        msg, conv = outbound.message, outbound.conversation
        to = outbound.recipient.external_id.strip().lower()
        try:
            checked_address(to)
        except RenderError:
            raise RecipientUnavailable("the recipient is not a deliverable address") from None
        if to == self.address or is_mail_system(to):
            # Never write to ourselves or to a mail system: that is how mail loops start.
            raise PermanentError(
                "refused: the recipient is this mailbox or a mail daemon", code="loop_prevented"
            )
        texts: list[str] = []
        files: list[OutgoingFile] = []
        for part in msg.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, MediaPart):
                got = await self._file(part)
                if got is not None:
                    files.append(got)
                elif part.url:
                    texts.append(f"[{part.name or 'File'}] {part.url}")
        domain = self.settings.domain
        message_id = token.message_id_for(self._key, conv.id, msg.id, domain)
        ours = [i for i in outbound.thread_external_ids if token.read_message_id(self._key, i)]
        in_reply_to, references = threading(
            outbound.reply_to_external_id, outbound.thread_external_ids, ours
        )
        reply_to = (
            token.plus_address_for(self._key, self.address, conv.id)
            if self.settings.plus_address_reply_to
            else None
        )
        default_subject = self.settings.default_subject or system_text(
            "email_subject", conv.language
        )
        reply_prefix = system_text("reply_prefix", conv.language)
        draft = Draft(
            cc=self._reply_cc(outbound, to),
            from_address=self.address,
            from_name=self.settings.display_name,
            to_address=to,
            to_name=outbound.recipient.display_name,
            # The first message of a thread the business starts has no "Re:".
            subject=reply_subject(conv.subject, default_subject, reply_prefix)
            if outbound.thread_external_ids
            else thread_subject(conv.subject, default_subject),
            text="\n\n".join(texts),
            message_id=message_id,
            date=datetime.now(UTC),
            in_reply_to=in_reply_to,
            references=references,
            reply_to=reply_to,
            automatic=msg.author.type == AuthorType.SYSTEM,
            files=files,
        )
        try:
            mime = render(draft)
        except RenderError as exc:
            raise PermanentError(f"cannot write this message as mail: {exc}") from None
        await send_mail(
            self.settings.smtp,
            mime,
            sender=self.address,
            recipients=[to, *(addr for _, addr in draft.cc)],
            timeout=self.settings.timeout_seconds,
            oauth=self._smtp_login(),
        )
        return SendReceipt(external_id=message_id)

    def _reply_cc(self, outbound: OutboundMessage, to: str) -> list[tuple[str | None, str]]:
        """The Cc a reply keeps: the customer's latest mail's, without us, the recipient,
        mail systems, or anything not usable as an address."""
        if not self.settings.keep_cc:
            return []
        found = outbound.last_inbound_metadata.get("cc")
        out: dict[str, str | None] = {}
        for item in found if isinstance(found, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("email"), str):
                continue
            addr = str(item["email"]).strip().lower()
            name = item.get("name")
            try:
                checked_address(addr)
            except RenderError:
                continue
            if addr == to or self._ours(addr) or is_mail_system(addr):
                continue
            out.setdefault(addr, name if isinstance(name, str) else None)
        return [(name, addr) for addr, name in out.items()][:CC_MAX]

    async def _file(self, part: MediaPart) -> OutgoingFile | None:
        """The bytes of a media part to attach; None to send it as a link instead."""
        if not part.url:
            return None
        limit = self.settings.max_attachment_bytes
        name = part.name or part.url.rstrip("/").rsplit("/", 1)[-1] or "attachment"
        mime = part.mime or "application/octet-stream"
        data = await self.sink.read_attachment(part.url, limit)  # None unless one of ours
        if data is not None:
            return OutgoingFile(data, name, mime)
        if urlsplit(part.url).scheme not in ("http", "https") or self._http_factory is None:
            return None
        if self._http is None:
            self._http = self._http_factory()
        try:
            async with self._http.stream("GET", part.url) as resp:
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise TransientError(f"fetching an attachment: HTTP {resp.status_code}")
                if resp.status_code != 200:
                    return None
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        return None
                    chunks.append(chunk)
        except httpx.TransportError as exc:
            raise TransientError(f"fetching an attachment: {type(exc).__name__}") from None
        return OutgoingFile(b"".join(chunks), name, mime)
