"""Property tests: any bytes give a parsed mail or ParseError, never another exception;
no value put into an outgoing mail can add or split a header."""

from __future__ import annotations

import base64
import email
import re
from datetime import UTC, datetime
from email import policy
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Connector
from connectors.email.connector import EmailConnector
from connectors.email.headers import answerable
from connectors.email.parse import ParseError, parse_message
from connectors.email.quotes import extract_reply
from connectors.email.render import Draft, OutgoingFile, RenderError, render
from connectors.email.settings import EmailSettings
from kernel.envelope import InboundMessage
from kernel.models import MediaPart

FIXTURES = [p.read_bytes() for p in sorted((Path(__file__).parent / "fixtures").glob("*.eml"))]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Date",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Auto-Submitted",
        "MIME-Version",
    ]
)
HEADER_VALUES = st.one_of(
    st.binary(max_size=80),
    st.sampled_from(
        [
            b"multipart/mixed; boundary=b",
            b"multipart/report; report-type=delivery-status; boundary=b",
            b"text/html; charset=x-bogus",
            b"text/plain; charset=windows-1258",
            b"message/rfc822",
            b"message/delivery-status",
            b"base64",
            b"quoted-printable",
            b"=?utf-8?B?w6A=?= =?bogus?Q?=FF?=",
            b"<a@b> <<c@d>",
            b'"x" <<@>>, ,;',
        ]
    ),
)


def _check(raw: bytes) -> None:
    try:
        mail = parse_message(raw, max_attachment_bytes=1000)
    except ParseError:
        return
    assert mail.external_id
    for value in (mail.subject or "", mail.from_name or "", mail.external_id):
        assert "\r" not in value and "\n" not in value
    extract_reply(mail.text)


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


@FUZZ
@given(
    st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=12),
    st.lists(st.one_of(st.binary(max_size=200), st.just(b"--b"), st.just(b"--b--")), max_size=8),
)
def test_mail_shaped_bytes(headers: list[tuple[str, bytes]], body: list[bytes]) -> None:
    raw = b"".join(n.encode() + b": " + v + b"\r\n" for n, v in headers)
    _check(raw + b"\r\n" + b"\r\n".join(body))


@FUZZ
@given(st.sampled_from(FIXTURES), st.data())
def test_corrupted_fixtures(raw: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(raw)))
    noise = data.draw(st.binary(max_size=40))
    at = data.draw(st.integers(0, len(raw)))
    _check(raw[:cut])
    _check(raw[:at] + noise + raw[at:])


ANY_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
    max_size=60,
).map(lambda s: s + "\r\nBcc: injected@example.org\n")


@FUZZ
@given(ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT, st.text(max_size=200))
def test_no_header_injection(
    from_name: str, to_name: str, subject: str, file_name: str, body: str
) -> None:
    draft = Draft(
        from_address="support@shop.example",
        from_name=from_name,
        to_address="an@example.org",
        to_name=to_name,
        subject=subject,
        text=body,
        message_id="ogw.x@shop.example",
        date=datetime(2026, 1, 1, tzinfo=UTC),
        in_reply_to="a@b",
        references=["a@b"],
        files=[OutgoingFile(b"data", file_name, "text/plain")],
    )
    try:
        data = render(draft).as_bytes()
    except RenderError:
        return
    msg = email.message_from_bytes(data, policy=policy.default)
    assert msg["Bcc"] is None
    assert msg.get_all("To") is not None and len(msg.get_all("To") or []) == 1
    assert len(msg.get_all("Subject") or []) == 1
    top = data.split(b"\r\n\r\n", 1)[0]
    # every header line is a continuation (starts with space/tab) or a known header
    names = {
        line.split(b":", 1)[0] for line in top.split(b"\r\n") if line and not line[:1].isspace()
    }
    assert names <= {
        b"From",
        b"To",
        b"Subject",
        b"Date",
        b"Message-ID",
        b"In-Reply-To",
        b"References",
        b"MIME-Version",
        b"Content-Type",
    }


# --- encoded words, MIME trees, and nothing lost -------------------------------------------

MIME_FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHARSETS = st.sampled_from(["utf-8", "UTF-8", "windows-1258", "iso-8859-1", "x-bogus", ""])
WORD_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["Khách hàng\r\nBcc: victim@example.net", "<victim@example.net>", "a@b.c, d@e.f", "\x00"]
    ),
)


@st.composite
def encoded_words(draw: st.DrawFn) -> bytes:
    """An RFC 2047 word, well-formed or not: random charset, B or Q, any payload."""
    charset = draw(CHARSETS)
    text = draw(WORD_TEXT).encode("utf-8", "surrogatepass")
    kind = draw(st.sampled_from(["B", "Q", "b", "X"]))
    if kind in ("B", "b"):
        payload = base64.b64encode(text)
        if draw(st.booleans()):
            payload = payload[: draw(st.integers(0, len(payload)))]  # broken padding
    else:
        payload = b"".join(
            b"=%02X" % c if c > 126 or c < 33 or c in b"=?_" else bytes([c]) for c in text
        )
    return b"=?" + charset.encode() + b"?" + kind.encode() + b"?" + payload + b"?="


ADDRESS_VALUES = st.one_of(
    st.tuples(
        encoded_words(), st.sampled_from([b" <an@example.org>", b"", b" an@example.org"])
    ).map(b"".join),
    st.lists(encoded_words(), min_size=1, max_size=3).map(b" ".join),
    HEADER_VALUES,
)


@st.composite
def mime_tree(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A MIME entity, sometimes malformed: wrong or missing boundaries, odd encodings."""
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.sampled_from([b"b", b"==x==", b"a b", b'"q"', b"--", b"b" * 80]))
        children = draw(st.lists(mime_tree(depth + 1), max_size=4))
        quoted = draw(st.booleans())
        param = b'"' + boundary + b'"' if quoted else boundary
        head = (
            b"Content-Type: multipart/"
            + draw(st.sampled_from([b"mixed", b"alternative", b"related", b"report"]))
            + b"; boundary="
            + param
            + b"\r\n\r\n"
        )
        body = b"".join(b"--" + boundary + b"\r\n" + child + b"\r\n" for child in children)
        if draw(st.booleans()):
            body += b"--" + boundary + b"--\r\n"
        return head + body
    ctype = draw(
        st.sampled_from(
            [b"text/plain", b"text/html", b"image/png", b"message/rfc822", b"application/pdf"]
        )
    )
    charset = draw(CHARSETS).encode()
    cte = draw(st.sampled_from([b"base64", b"quoted-printable", b"8bit", b"x-uue", b""]))
    name = draw(st.one_of(st.just(b""), encoded_words().map(lambda w: b'; name="' + w + b'"')))
    payload = draw(st.binary(max_size=120))
    return (
        b"Content-Type: " + ctype + b"; charset=" + charset + name + b"\r\n"
        b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n" + payload
    )


@st.composite
def mails(draw: st.DrawFn) -> bytes:
    headers = [
        b"From: " + draw(ADDRESS_VALUES),
        b"To: " + draw(ADDRESS_VALUES),
        b"Cc: " + draw(ADDRESS_VALUES),
        b"Subject: " + draw(st.lists(encoded_words(), max_size=3).map(b" ".join)),
        b"Message-ID: <" + draw(st.sampled_from([b"m1@x", b"", b"<>", b"a b@c"])) + b">",
    ]
    order = draw(st.permutations(headers))
    return b"\r\n".join(order) + b"\r\nMIME-Version: 1.0\r\n" + draw(mime_tree())


def _sender_check(raw: bytes) -> None:
    try:
        mail = parse_message(raw, max_attachment_bytes=1000, max_parts=50)
    except ParseError:
        return
    assert mail.external_id
    for value in (mail.subject or "", mail.from_name or "", mail.external_id):
        assert "\r" not in value and "\n" not in value
    # The sender's address is written in the mail as is, never made of decoded words.
    if mail.from_address is not None and mail.from_address.isascii():
        assert mail.from_address.encode() in raw.lower()
    for _, addr in mail.cc:
        assert answerable(addr)
        # (the list parser drops the spaces between an address's words)
        assert not addr.isascii() or addr.encode() in re.sub(rb"\s", b"", raw.lower())


@MIME_FUZZ
@given(mails())
def test_encoded_words_and_mime_trees(raw: bytes) -> None:
    _sender_check(raw)


class RecordingSink:
    """What the connector hands on for one mail: stored, kept raw, or applied."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    async def known(self, channel_id: str, external_id: str) -> bool:
        return False

    async def keep_raw(self, channel_id: str, kind: str, payload: bytes, reason: str) -> None:
        assert payload and reason
        self.outcomes.append("raw")

    async def ingest(self, inbound: InboundMessage) -> None:
        assert inbound.parts and inbound.sender.external_id
        self.outcomes.append("ingest")

    async def update_status(self, update: object) -> list[object]:
        return []

    async def save_attachment(
        self, channel_id: str, data: bytes, *, name: str | None, mime: str | None
    ) -> MediaPart:
        return MediaPart(type="file", url="https://files.example/x", name=name, mime=mime)


@MIME_FUZZ
@given(st.one_of(mails(), st.binary(min_size=1, max_size=400)))
async def test_every_mail_is_stored_or_kept_raw(raw: bytes) -> None:
    settings = EmailSettings.model_validate(
        {
            "id": "mail",
            "type": "email",
            "address": "support@shop.example",
            "imap": {"host": "127.0.0.1", "username": "u", "password": "p"},
            "smtp": {"host": "127.0.0.1", "security": "none"},
            "max_message_parts": 50,
        }
    )
    conn = EmailConnector(settings, b"k" * 32)
    sink: Any = RecordingSink()
    await Connector.start(conn, sink)  # the sink only, no IMAP session
    await conn.handle_raw(raw)
    assert sink.outcomes in (["ingest"], ["raw"])
