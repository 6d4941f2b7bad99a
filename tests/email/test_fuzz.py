"""Property tests: any bytes give a parsed mail or ParseError, never another exception;
no value put into an outgoing mail can add or split a header."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.email.parse import ParseError, parse_message
from connectors.email.quotes import extract_reply
from connectors.email.render import Draft, OutgoingFile, RenderError, render

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
