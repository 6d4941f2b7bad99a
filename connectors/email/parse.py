"""Parsing received mail (pure): raw RFC 5322 bytes -> :class:`ParsedMail`.

Built on the standard library's ``email`` package with ``policy.default``. Real mail is
often broken, so nothing here trusts it: every header is read through :func:`_header`,
which falls back to the raw value when the structured parser fails; bodies are decoded
from their bytes with the declared charset, then UTF-8, then windows-1252, never raising
on an unknown or wrong charset; HTML is sanitised with nh3 (the Ammonia sanitiser) before
anyone can render it. Anything that still cannot be read becomes :class:`ParseError`.
"""

from __future__ import annotations

import codecs
import contextlib
import email
import email.header
import hashlib
import html
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, Literal

import nh3

from kernel.text import clean_text, normalize_email

HASH_DOMAIN = "no-message-id.omnigw.invalid"
MAX_HEADER_CHARS = 16_384
MAX_REFERENCES = 100
MAX_PARTS = 500
MAX_DEPTH = 20

Kind = Literal["message", "auto_reply", "bulk", "bounce", "receipt"]


class ParseError(ValueError):
    """The bytes are not a mail message that can be read."""


@dataclass(frozen=True)
class Attachment:
    data: bytes
    name: str
    mime: str
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True)
class SkippedFile:
    name: str
    mime: str
    size: int
    reason: str


@dataclass(frozen=True)
class Bounce:
    """A delivery report about mail we sent."""

    original_ids: tuple[str, ...]
    failed: bool
    reason: str


@dataclass(frozen=True)
class ParsedMail:
    external_id: str
    message_id: str | None
    from_address: str | None
    from_name: str | None
    # To, Cc, Delivered-To and X-Original-To addresses (plus-address tokens live there).
    recipients: tuple[str, ...]
    subject: str | None
    date: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    skipped: tuple[SkippedFile, ...]
    kind: Kind
    kind_reason: str | None
    bounce: Bounce | None
    auto_submitted: str | None
    x_loop: tuple[str, ...] = field(default_factory=tuple)

    @property
    def thread_refs(self) -> list[str]:
        """In-Reply-To then References, newest first, without repeats."""
        seen: dict[str, None] = {}
        for ref in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(ref, None)
        return list(seen)[:MAX_REFERENCES]


# --- headers ------------------------------------------------------------------------------

_MSGID = re.compile(r"<([^<>\s]{1,900})>")
_MSGID_VALID = re.compile(r"^[\x21-\x7e]+@[\x21-\x7e]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# An address we could write back to: a local part, one @, a dotted domain, no spaces.
_ADDRESS_OK = re.compile(r"^[^\s@<>()\[\],;:\"]{1,64}@[^\s@<>()\[\],;:\"]+\.[^\s@<>()\[\],;:\".]+$")


def _raw_header(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            text = value if isinstance(value, str) else str(value)
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return None


def _header(msg: Message, name: str) -> str | None:
    """One header as text, decoded where possible; never raises on a malformed value."""
    try:
        value = msg.get(name)
        text = None if value is None else str(value)
    except Exception:  # the structured header parser gave up: fall back to the raw text
        text = _raw_header(msg, name)
        if text is not None:
            try:
                text = str(email.header.make_header(email.header.decode_header(text)))
            except Exception:
                text = text.replace("\n", " ")
    if text is None:
        return None
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = _CONTROL.sub(" ", text.replace("\r", " ").replace("\n", " "))
    return clean_text(text.strip())[:MAX_HEADER_CHARS] or None


def _raw_headers(msg: Message, name: str) -> list[str]:
    """Every value of a header, RFC 2047 words decoded where they can be."""
    out = []
    for key, value in msg.raw_items():
        if key.lower() != name.lower():
            continue
        text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        with contextlib.suppress(Exception):  # undecodable words stay as they came
            text = str(email.header.make_header(email.header.decode_header(text)))
        out.append(_CONTROL.sub(" ", text.replace("\r", " ").replace("\n", " ")))
    return out


def normalize_message_id(value: str | None) -> str | None:
    """``<abc@host>`` -> ``abc@host``; None when the value is not a usable Message-ID."""
    if not value:
        return None
    m = _MSGID.search(value)
    candidate = m.group(1) if m else value.strip()
    if not _MSGID_VALID.match(candidate) or len(candidate) > 900:
        return None
    return candidate


def message_ids(value: str | None) -> tuple[str, ...]:
    """Every Message-ID in a References or In-Reply-To value, in order."""
    if not value:
        return ()
    found = _MSGID.findall(value)
    if not found:  # some clients drop the angle brackets
        found = [t for t in value.split() if "@" in t]
    out: dict[str, None] = {}
    for item in found:
        ident = normalize_message_id(item)
        if ident is not None:
            out.setdefault(ident, None)
    return tuple(out)


def _addresses(msg: Message, *names: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name in names:
        for value in _raw_headers(msg, name):
            try:
                found = getaddresses([value])
            except Exception:  # noqa: S112 (an unreadable address list adds nothing)
                continue
            for display, addr in found:
                addr = clean_text(addr).strip().lower()
                if "@" in addr and not any(c.isspace() for c in addr) and len(addr) <= 320:
                    pairs.append((clean_text(display).strip(), addr))
    return pairs


def _sender(msg: Message) -> tuple[str | None, str | None]:
    with contextlib.suppress(Exception):  # malformed: fall back to the raw header below
        value: Any = msg.get("From")
        if value is not None and getattr(value, "addresses", None):
            first: Address = value.addresses[0]
            addr = normalize_email(first.addr_spec)
            if addr is not None and _ADDRESS_OK.match(addr) and ".." not in addr:
                return addr, clean_text(first.display_name).strip() or None
    for display, addr in _addresses(msg, "From"):
        if _ADDRESS_OK.match(addr) and ".." not in addr:
            return addr, display or None
    return None, None


def _date(msg: Message) -> datetime | None:
    raw = _raw_header(msg, "Date")
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw.strip())
    except Exception:
        return None
    return parsed if parsed.tzinfo is not None else None


# --- bodies -------------------------------------------------------------------------------


def decode_text(payload: bytes, charset: str | None) -> str:
    """Bytes of a text part as text, whatever its charset claims."""
    tried = []
    if charset:
        try:
            codec = codecs.lookup(charset.strip().strip('"').lower()).name
            tried.append(codec)
            return payload.decode(codec)
        except (LookupError, UnicodeDecodeError, ValueError):
            pass
    for codec in ("utf-8", "cp1252"):
        if codec in tried:
            continue
        try:
            return payload.decode(codec)
        except UnicodeDecodeError:
            continue
    return payload.decode(tried[0] if tried else "utf-8", "replace")


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"


def _disposition(part: Message) -> str | None:
    try:
        value = part.get_content_disposition()
    except Exception:
        return None
    return value.lower() if value else None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        return None
    name = clean_text(_CONTROL.sub("", name.replace("\r", "").replace("\n", ""))).strip()
    return name[:200] or None


_SANITIZE_TAGS = set(nh3.ALLOWED_TAGS) | {"font"}
_SANITIZE_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "img": {"src", "alt", "title", "width", "height"},
    "a": {"href", "title"},
    "font": {"color"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "blockquote": {"cite", "type"},
}


def sanitize_html(value: str) -> str:
    """HTML safe to render: no scripts, styles, event handlers or javascript: URLs."""
    return nh3.clean(
        value,
        tags=_SANITIZE_TAGS,
        attributes=_SANITIZE_ATTRIBUTES,
        clean_content_tags={"script", "style", "title", "head"},
        url_schemes={"http", "https", "mailto", "tel", "cid"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


_CID_SRC = re.compile(r"""(src=")cid:([^"]+)(")""", re.IGNORECASE)


def rewrite_cids(sanitized: str, urls: dict[str, str]) -> str:
    """Point ``src="cid:..."`` at stored inline images (unknown ones are dropped)."""

    def sub(m: re.Match[str]) -> str:
        url = urls.get(html.unescape(m.group(2)).strip("<>").lower())
        return f"{m.group(1)}{html.escape(url, quote=True)}{m.group(3)}" if url else 'src=""'

    return _CID_SRC.sub(sub, sanitized)


class _TextFromHtml(HTMLParser):
    _BLOCK = frozenset(
        {
            *("address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt"),
            *("footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li"),
            *("main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul"),
        }
    )
    _SKIP = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.quote_depth = 0
        self.skip = 0
        self.pre = 0

    def _flush(self) -> None:
        text = "".join(self.current)
        if not self.pre:
            text = re.sub(r"[ \t\r\n\f\u00a0]+", " ", text).strip()
        prefix = "> " * self.quote_depth
        self.lines.append(prefix + text if text or self.quote_depth else text)
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCK:
            if self.current or tag == "br":
                self._flush()
            if tag == "blockquote":
                self.quote_depth += 1
            elif tag == "pre":
                self.pre += 1
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.current.append(f"[{alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            if self.current:
                self._flush()
            if tag == "blockquote":
                self.quote_depth = max(0, self.quote_depth - 1)
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)
            elif tag in ("p", "div", "table", "ul", "ol") and self.lines and self.lines[-1]:
                self.lines.append("")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.current.append(data)

    def text(self) -> str:
        if self.current:
            self._flush()
        out: list[str] = []
        for line in self.lines:
            if not line.strip() and out and not out[-1].strip():
                continue  # one blank line at most
            out.append(line.rstrip())
        return "\n".join(out).strip()


def html_to_text(value: str) -> str:
    """Readable plain text from HTML; blockquotes become "> " lines."""
    parser = _TextFromHtml()
    try:
        parser.feed(value)
        parser.close()
    except Exception:
        return re.sub(r"<[^>]*>", " ", value)
    return parser.text()


# --- structure ----------------------------------------------------------------------------


@dataclass
class _Walk:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    delivery_status: list[Message] = field(default_factory=list)
    original_headers: list[Message] = field(default_factory=list)
    parts: int = 0


def _attachment_name(part: Message, mime: str, n: int) -> str:
    name = _filename(part)
    if name:
        return name
    if mime == "message/rfc822":
        return f"message-{n}.eml"
    ext = mimetypes.guess_extension(mime) or ".bin"
    return f"attachment-{n}{ext}"


def _walk(part: Message, acc: _Walk, max_attachment: int, depth: int = 0) -> None:
    acc.parts += 1
    if acc.parts > MAX_PARTS or depth > MAX_DEPTH:
        return
    mime = _content_type(part)
    disposition = _disposition(part)
    if part.is_multipart() and mime not in ("message/rfc822", "message/delivery-status"):
        children = part.get_payload()
        if isinstance(children, list):
            for child in children:
                if isinstance(child, Message):
                    _walk(child, acc, max_attachment, depth + 1)
        return
    if mime == "message/delivery-status":
        children = part.get_payload()
        if isinstance(children, list):
            acc.delivery_status.extend(c for c in children if isinstance(c, Message))
        else:
            acc.delivery_status.extend(_header_blocks(_payload(part)))
        return
    if mime == "text/rfc822-headers":
        acc.original_headers.extend(_header_blocks(_payload(part))[:1])
        return
    if mime == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            acc.original_headers.append(inner[0])
            data = inner[0].as_bytes(policy=policy.default.clone(linesep="\r\n"))
        else:
            data = _payload(part)
        _keep(part, acc, data, mime, max_attachment)
        return
    body_text = mime in ("text/plain", "text/html") and disposition != "attachment"
    if body_text and not (mime == "text/plain" and _filename(part) and disposition):
        text = decode_text(_payload(part), _charset(part))
        (acc.plain if mime == "text/plain" else acc.html).append(text)
        return
    _keep(part, acc, _payload(part), mime, max_attachment)


def _keep(part: Message, acc: _Walk, data: bytes, mime: str, max_attachment: int) -> None:
    name = _attachment_name(part, mime, len(acc.attachments) + len(acc.skipped) + 1)
    if len(data) > max_attachment:
        acc.skipped.append(
            SkippedFile(name, mime, len(data), f"over the {max_attachment}-byte limit")
        )
        return
    cid = normalize_message_id(_header(part, "Content-ID"))
    cid = cid.lower() if cid else None
    inline = _disposition(part) == "inline" or (cid is not None and _disposition(part) is None)
    acc.attachments.append(Attachment(data, name, mime, inline=inline, content_id=cid))


def _header_blocks(data: bytes) -> list[Message]:
    text = decode_text(data, "utf-8").replace("\r\n", "\n")
    blocks: list[Message] = []
    for chunk in re.split(r"\n\s*\n", text):
        if chunk.strip():
            with contextlib.suppress(Exception):  # a broken block tells us nothing
                blocks.append(email.message_from_string(chunk + "\n\n", policy=policy.default))
    return blocks


# --- classification -----------------------------------------------------------------------

_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto[- ]?reply|autoreply|out of (the )?office|"
    r"trả lời tự động|abwesenheitsnotiz|réponse automatique|respuesta automática)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|delivery status notification|delivery failure|mail delivery failed|"
    r"returned mail|failure notice|non[- ]?delivery)",
    re.IGNORECASE,
)
_DELAY_SUBJECT = re.compile(r"(delay|warning|chậm)", re.IGNORECASE)
_INLINE_MSGID = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)


def _classify(
    msg: Message, from_address: str | None, subject: str | None, walk: _Walk
) -> tuple[Kind, str | None]:
    mime = _content_type(msg)
    report_type = ""
    try:
        report_type = str(msg.get_param("report-type", "") or "").lower()
    except Exception:
        report_type = ""
    if mime == "multipart/report" and report_type == "disposition-notification":
        return "receipt", "read receipt (multipart/report; disposition-notification)"
    if mime == "multipart/report":
        return "bounce", f"delivery report (multipart/report; {report_type or 'no type'})"
    if from_address and _DAEMON.match(from_address):
        return "bounce", f"sent by {from_address.split('@')[0]}"
    auto = (_header(msg, "Auto-Submitted") or "").lower()
    if auto and auto.split(";")[0].strip() != "no":
        return "auto_reply", f"Auto-Submitted: {auto[:40]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autogenerated"):
        if _header(msg, name):
            return "auto_reply", f"{name} is set"
    if _header(msg, "X-Auto-Response-Suppress"):
        return "auto_reply", "X-Auto-Response-Suppress is set"
    precedence = (_header(msg, "Precedence") or "").lower()
    if precedence in ("bulk", "list", "junk"):
        return "bulk", f"Precedence: {precedence}"
    if precedence == "auto_reply":
        return "auto_reply", "Precedence: auto_reply"
    if _header(msg, "List-Id") or _header(msg, "List-Unsubscribe"):
        return "bulk", "mailing-list mail (List-Id / List-Unsubscribe)"
    if subject and _AUTO_SUBJECT.match(subject):
        return "auto_reply", "the subject says it is an automatic reply"
    return "message", None


def _bounce(msg: Message, walk: _Walk, subject: str | None) -> Bounce:
    ids: dict[str, None] = {}
    for headers in walk.original_headers:
        ident = normalize_message_id(_header(headers, "Message-ID"))
        if ident:
            ids.setdefault(ident, None)
    if not ids:
        for text in walk.plain:
            for m in _INLINE_MSGID.finditer(text):
                ident = normalize_message_id(m.group(1))
                if ident:
                    ids.setdefault(ident, None)
    for ident in (
        *message_ids(_header(msg, "In-Reply-To")),
        *message_ids(_header(msg, "References")),
    ):
        ids.setdefault(ident, None)
    actions: list[str] = []
    reasons: list[str] = []
    for block in walk.delivery_status:
        action = (_header(block, "Action") or "").lower()
        if action:
            actions.append(action)
        status = _header(block, "Status")
        diagnostic = _header(block, "Diagnostic-Code")
        recipient = _header(block, "Final-Recipient") or _header(block, "Original-Recipient")
        if action or status or diagnostic:
            bits = [b for b in (status, recipient, diagnostic) if b]
            if bits:
                reasons.append(re.sub(r"\s+", " ", " ".join(bits)))
    # Without a machine-readable action, a daemon's "delayed"/"warning" notice is no failure.
    failed = "failed" in actions if actions else not (subject and _DELAY_SUBJECT.search(subject))
    reason = "; ".join(reasons)[:500] if reasons else (subject or "the mail could not be delivered")
    return Bounce(tuple(ids), failed, f"bounced: {reason}")


# --- entry point --------------------------------------------------------------------------


def stable_id(raw: bytes) -> str:
    """An external id for mail without a usable Message-ID: the same bytes, the same id."""
    return f"{hashlib.sha256(raw).hexdigest()[:40]}@{HASH_DOMAIN}"


def parse_message(raw: bytes, *, max_attachment_bytes: int) -> ParsedMail:
    """Read one received message; raises ParseError for bytes that are not mail at all."""
    if not raw or not raw.strip():
        raise ParseError("the message is empty")
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # the parser is lenient; this is for the truly unreadable
        raise ParseError(f"not a mail message: {type(exc).__name__}") from None
    if not isinstance(msg, EmailMessage) or not msg.keys():
        raise ParseError("the message has no headers")

    message_id = normalize_message_id(_header(msg, "Message-ID"))
    from_address, from_name = _sender(msg)
    subject = _header(msg, "Subject")
    walk = _Walk()
    try:
        _walk(msg, walk, max_attachment_bytes)
    except RecursionError:
        raise ParseError("the message is nested too deeply") from None

    sanitized = sanitize_html("\n".join(walk.html)) if walk.html else None
    if walk.plain:
        text = "\n".join(walk.plain)
    elif walk.html:
        text = html_to_text("\n".join(walk.html))
    else:
        text = ""
    text = clean_text(text.replace("\r\n", "\n")).strip()

    kind, reason = _classify(msg, from_address, subject, walk)
    bounce = _bounce(msg, walk, subject) if kind == "bounce" else None
    recipients = tuple(
        dict.fromkeys(
            addr for _, addr in _addresses(msg, "To", "Cc", "Delivered-To", "X-Original-To")
        )
    )
    return ParsedMail(
        external_id=message_id or stable_id(raw),
        message_id=message_id,
        from_address=from_address,
        from_name=from_name,
        recipients=recipients,
        subject=subject,
        date=_date(msg),
        in_reply_to=message_ids(_header(msg, "In-Reply-To"))[:MAX_REFERENCES],
        references=message_ids(_header(msg, "References"))[-MAX_REFERENCES:],
        text=text,
        html=sanitized,
        attachments=tuple(walk.attachments),
        skipped=tuple(walk.skipped),
        kind=kind,
        kind_reason=reason,
        bounce=bounce,
        auto_submitted=_header(msg, "Auto-Submitted"),
        x_loop=tuple(v.strip().lower() for v in _raw_headers(msg, "X-Loop")),
    )
