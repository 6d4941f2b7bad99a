"""Outbound mail: headers, threading, tokens, and no header injection from any field."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy

import pytest

from connectors.email import token
from connectors.email.parse import parse_message
from connectors.email.render import (
    Draft,
    OutgoingFile,
    RenderError,
    checked_address,
    render,
    reply_subject,
    threading,
)

KEY = b"k" * 32
CONV = "cv_01JGZ3YQ5R8X2M4N6P7Q8R9S0T"
MSG = "msg_01JGZ3YQ5R8X2M4N6P7Q8R9S0V"
WHEN = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


def draft(**kw: object) -> Draft:
    base: dict[str, object] = {
        "from_address": "support@shop.example",
        "from_name": "Cửa hàng Hoa Mai",
        "to_address": "an@example.org",
        "to_name": "Nguyễn Văn An",
        "subject": "Re: Đơn hàng",
        "text": "Dạ, shop gửi hàng hôm nay ạ.\n\nCảm ơn bạn!",
        "message_id": token.message_id_for(KEY, CONV, MSG, "shop.example"),
        "date": WHEN,
    }
    base.update(kw)
    return Draft(**base)  # type: ignore[arg-type]


def wire(d: Draft) -> email.message.EmailMessage:
    data = render(d).as_bytes()
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


def test_headers_and_bodies() -> None:
    d = draft(
        in_reply_to="c1@example.org",
        references=["c0@example.org", "c1@example.org"],
        files=[OutgoingFile(b"%PDF-1.4", "hoá đơn.pdf", "application/pdf")],
    )
    msg = wire(d)
    assert msg["From"].addresses[0].display_name == "Cửa hàng Hoa Mai"
    assert msg["From"].addresses[0].addr_spec == "support@shop.example"
    assert msg["To"].addresses[0].display_name == "Nguyễn Văn An"
    assert msg["Subject"] == "Re: Đơn hàng"
    assert msg["Message-ID"] == f"<{d.message_id}>"
    assert d.message_id.startswith(f"ogw.{CONV}.{MSG}.")
    assert msg["In-Reply-To"] == "<c1@example.org>"
    assert msg["References"].split() == ["<c0@example.org>", "<c1@example.org>"]
    assert msg["Date"] == "Mon, 05 Jan 2026 03:00:00 +0000"
    assert msg["Auto-Submitted"] is None
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and "Cảm ơn bạn!" in plain.get_content()
    assert html is not None and "<p>Cảm ơn bạn!</p>" in html.get_content()
    files = list(msg.iter_attachments())
    assert [f.get_filename() for f in files] == ["hoá đơn.pdf"]
    assert files[0].get_content() == b"%PDF-1.4"


def test_automatic_messages_say_so() -> None:
    msg = wire(draft(automatic=True))
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"


def test_html_in_agent_text_is_escaped() -> None:
    msg = wire(draft(text="<script>alert(1)</script> & <b>"))
    html = msg.get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert "&lt;script&gt;" in html.get_content()


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Đơn hàng", "Re: Đơn hàng"),
        ("Re: Đơn hàng", "Re: Đơn hàng"),
        ("RE: x", "RE: x"),
        ("AW: x", "AW: x"),
        ("TL: x", "TL: x"),
        (None, "Re: Your message"),
        ("", "Re: Your message"),
        ("a\r\nBcc: evil@example.org", "Re: a Bcc: evil@example.org"),
    ],
)
def test_reply_subject(subject: str | None, expected: str) -> None:
    assert reply_subject(subject, "Your message") == expected


def test_threading_prefers_the_customers_latest_message() -> None:
    ours = ["ogw.a@shop.example", "ogw.b@shop.example"]
    thread = ["c1@x", ours[0], "c2@x", ours[1]]
    parent, refs = threading(None, thread, ours)
    assert parent == "c2@x"
    assert refs[-1] == "c2@x" and set(refs) == set(thread)
    parent, _ = threading("c1@x", ["c1@x", "c2@x"])
    assert parent == "c1@x"
    # ids made up for mail without a Message-ID never go out
    parent, refs = threading(None, ["abc@no-message-id.omnigw.invalid"])
    assert parent is None and refs == []
    many = [f"m{i}@x" for i in range(50)]
    _, refs = threading(None, many)
    assert len(refs) == 20 and refs[0] == "m0@x" and refs[-1] == "m49@x"


def test_message_id_is_stable_and_verifiable() -> None:
    first = token.message_id_for(KEY, CONV, MSG, "shop.example")
    assert first == token.message_id_for(KEY, CONV, MSG, "shop.example")  # retries reuse it
    found = token.read_message_id(KEY, f"<{first}>")
    assert found is not None and (found.conversation_id, found.message_id) == (CONV, MSG)
    assert token.read_message_id(KEY, first.upper()) is not None  # case-mangled by a server
    assert token.read_message_id(b"other-channel-key" * 2, first) is None
    forged = first.replace(CONV, "cv_01JGZ3YQ5R8X2M4N6P7Q8R9S0A")
    assert token.read_message_id(KEY, forged) is None
    assert token.read_message_id(KEY, "c1@example.org") is None


def test_plus_address_token() -> None:
    plus = token.plus_address_for(KEY, "support@shop.example", CONV)
    assert plus.startswith("support+ogw.") and plus.endswith("@shop.example")
    assert token.read_plus_address(KEY, plus, "support@shop.example") == CONV
    assert token.read_plus_address(KEY, plus.lower(), "support@shop.example") == CONV
    assert token.read_plus_address(KEY, plus, "other@shop.example") is None
    assert (
        token.read_plus_address(KEY, plus.replace("@shop", "@evil"), "support@shop.example") is None
    )
    tampered = plus.replace(CONV, "cv_01JGZ3YQ5R8X2M4N6P7Q8R9S0A")
    assert token.read_plus_address(KEY, tampered, "support@shop.example") is None


def test_our_mail_parses_back_with_its_threading() -> None:
    d = draft(in_reply_to="c1@example.org", references=["c1@example.org"])
    parsed = parse_message(render(d).as_bytes(), max_attachment_bytes=10_000)
    assert parsed.message_id == d.message_id
    assert parsed.in_reply_to == ("c1@example.org",)
    assert parsed.from_name == "Cửa hàng Hoa Mai"
    assert "Cảm ơn bạn!" in parsed.text


@pytest.mark.parametrize(
    "address",
    [
        "a@b.example\r\nBcc: x@y.example",
        "a b@example.org",
        "<a@example.org>",
        "a@example.org, b@example.org",
        "nobody",
        "a@@example.org",
        "ä@example.org",
        "",
    ],
)
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(RenderError):
        checked_address(address)
    with pytest.raises(RenderError):
        render(draft(to_address=address))


def test_no_header_injection_from_names_and_subject() -> None:
    evil = "x\r\nBcc: victim@example.org\r\nX-Injected: 1\n\nbody"
    data = render(
        draft(from_name=evil, to_name=evil, subject=evil, files=[OutgoingFile(b"x", evil, evil)])
    ).as_bytes()
    msg = email.message_from_bytes(data, policy=policy.default)
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    header_block = data.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in header_block and b"\nX-Injected" not in header_block
