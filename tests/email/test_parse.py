"""Parsing a corpus of real-world mail shapes (tests/email/fixtures): clients' replies,
charsets, HTML, attachments, auto-replies, bounces and broken headers."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from connectors.email.parse import (
    HASH_DOMAIN,
    ParseError,
    decode_text,
    html_to_text,
    message_ids,
    normalize_message_id,
    parse_message,
    rewrite_cids,
    sanitize_html,
)
from connectors.email.quotes import extract_reply

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str, max_attachment_bytes: int = 10_000_000):  # type: ignore[no-untyped-def]
    raw = (FIXTURES / name).read_bytes()
    return parse_message(raw, max_attachment_bytes=max_attachment_bytes)


# fixture, sender, subject, the new part of the reply, a piece of the quoted history
REPLIES = [
    (
        "gmail_reply.eml",
        "mai.tran@gmail.com",
        "Re: Đơn hàng #1234",
        "Cảm ơn shop, mình nhận được hàng rồi nhé!",
        "đã được gửi đi hôm nay",
    ),
    (
        "outlook_reply.eml",
        "john.smith@outlook.com",
        "RE: Your invoice",
        "Hi,\n\nCould you send the invoice again? The link has expired.\n\nBest regards,\nJohn",
        "please find your invoice",
    ),
    (
        "apple_mail_reply.eml",
        "linh.nguyen@icloud.com",
        "Re: Delivery time",
        "Tomorrow morning works for me, thanks.",
        "When would you like the parcel delivered?",
    ),
    (
        "thunderbird_reply.eml",
        "klaus.weber@posteo.de",
        "Re: Return request",
        "Yes, the box is still sealed. I will send it back on Friday.",
        "original packaging",
    ),
    (
        "vietnamese_reply_cp1258.eml",
        "ngoc.anh@yahoo.com.vn",
        "Trả lời: Giao hàng",
        "Dạ em cảm ơn chị, em sẽ chờ ạ.",
        "đơn hàng sẽ được giao trong 2 ngày",
    ),
    (
        "html_only.eml",
        "minh@example.vn",
        "Đổi size",
        "Xin chào, mình muốn đổi size áo.\n\nbấm vào đây hoặc đơn 9",
        "Bạn cần hỗ trợ gì ạ?",
    ),
]


@pytest.mark.parametrize(
    ("name", "sender", "subject", "new", "quoted"), REPLIES, ids=[r[0] for r in REPLIES]
)
def test_replies_of_common_clients(
    name: str, sender: str, subject: str, new: str, quoted: str
) -> None:
    mail = load(name)
    assert mail.kind == "message"
    assert mail.from_address == sender
    assert mail.subject == subject
    assert unicodedata.is_normalized("NFC", mail.subject)
    reply = extract_reply(mail.text)
    assert reply.text == new
    assert reply.quoted is not None and quoted in reply.quoted
    assert quoted in mail.text  # the full original stays readable
    assert mail.thread_refs or name == "html_only.eml"  # replies name what they answer


def test_signatures_are_separated() -> None:
    assert extract_reply(load("thunderbird_reply.eml").text).signature == (
        "-- \nKlaus Weber\nMüllerstraße 12, Berlin"
    )
    assert extract_reply(load("apple_mail_reply.eml").text).signature == "Sent from my iPhone"


@pytest.mark.parametrize(
    ("name", "sender_name", "text"),
    [
        ("vietnamese_reply_cp1258.eml", "Ngọc Anh", "Dạ em cảm ơn chị"),
        ("latin1.eml", "Renée Dupré", "le colis est arrivé abîmé. Voilà"),
        ("koi8r.eml", "Иван", "Здравствуйте, где мой заказ?"),
        ("gmail_reply.eml", "Trần Thị Mai", "mình nhận được hàng"),
    ],
)
def test_non_utf8_charsets_read_right(name: str, sender_name: str, text: str) -> None:
    mail = load(name)
    assert mail.from_name == sender_name
    assert text in mail.text
    assert unicodedata.is_normalized("NFC", mail.text)


def test_windows_1258_combining_tones_become_nfc() -> None:
    # cp1258 writes "ả" as "a" + a combining hook: the text must come out composed.
    text = decode_text("Tra\u0309 lơ\u0300i".encode("cp1258"), "windows-1258")
    mail = load("vietnamese_reply_cp1258.eml")
    assert "Trả lời" == unicodedata.normalize("NFC", text) == mail.subject.split(":")[0]


def test_unknown_and_wrong_charsets_never_raise() -> None:
    assert decode_text("café".encode(), "x-no-such-charset") == "café"
    assert decode_text("café".encode("cp1252"), "utf-8") == "café"
    assert decode_text(b"\xff\xfe\x00", None)  # something, never an exception


def test_html_is_sanitised_and_text_is_derived() -> None:
    mail = load("html_only.eml")
    assert mail.html is not None
    for bad in ("<script", "alert(", "onclick", "onerror", "javascript:", "<style"):
        assert bad not in mail.html
    assert 'href="https://shop.example/orders/9"' in mail.html
    assert "<b>đổi size</b>" in mail.html
    assert "Bạn cần hỗ trợ gì ạ?" in mail.text  # blockquote kept in the full text...
    assert "> Bạn cần hỗ trợ gì ạ?" in html_to_text(mail.html)  # ...as a quote


def test_sanitiser_drops_dangerous_markup() -> None:
    dirty = (
        '<a href="javascript:x()" onmouseover="y()">a</a><iframe src="https://e"></iframe>'
        '<img src="data:image/png;base64,AAAA"><form action="/x"><input name=p></form>'
        '<div style="background:url(https://t.example/x)">d</div>'
    )
    clean = sanitize_html(dirty)
    for bad in ("javascript:", "onmouseover", "<iframe", "data:", "<form", "<input", "style="):
        assert bad not in clean


def test_attachments_inline_images_and_limits() -> None:
    mail = load("attachments.eml", max_attachment_bytes=2000)
    by_name = {a.name: a for a in mail.attachments}
    photo = by_name["photo.png"]
    assert photo.inline and photo.content_id == "ii_photo1@shop"
    assert photo.data.startswith(b"\x89PNG")
    pdf = by_name["hoá đơn.pdf"]  # RFC 2231 file name, decoded
    assert pdf.mime == "application/pdf" and not pdf.inline
    assert [s.size for s in mail.skipped] == [3000]
    assert "limit" in mail.skipped[0].reason
    assert mail.html is not None and 'src="cid:ii_photo1@shop"' in mail.html
    rewritten = rewrite_cids(mail.html, {"ii_photo1@shop": "/v1/attachments/att_1"})
    assert 'src="/v1/attachments/att_1"' in rewritten
    assert 'src=""' in rewrite_cids(mail.html, {})  # unknown cid: no dangling reference


@pytest.mark.parametrize(
    ("name", "kind", "why"),
    [
        ("auto_reply.eml", "auto_reply", "Auto-Submitted"),
        ("outlook_oof.eml", "auto_reply", "X-Auto-Response-Suppress"),
        ("bulk_list.eml", "bulk", "Precedence"),
        ("bounce_dsn.eml", "bounce", "multipart/report"),
        ("bounce_delayed.eml", "bounce", "multipart/report"),
        ("bounce_plain_daemon.eml", "bounce", "postmaster"),
        ("gmail_reply.eml", "message", None),
    ],
)
def test_classification(name: str, kind: str, why: str | None) -> None:
    mail = load(name)
    assert mail.kind == kind
    if why is None:
        assert mail.kind_reason is None
    else:
        assert mail.kind_reason is not None and why in mail.kind_reason


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ("Auto-Submitted: auto-generated", "auto_reply"),
        ("Auto-Submitted: no", "message"),
        ("X-Autoreply: yes", "auto_reply"),
        ("Precedence: junk", "bulk"),
        ("Precedence: list", "bulk"),
        ("List-Id: <x.example>", "bulk"),
        ("Subject: Out of Office: back Monday", "auto_reply"),
        ("Subject: Trả lời tự động: đang nghỉ", "auto_reply"),
        ("Subject: Out of stock?", "message"),
    ],
)
def test_auto_reply_and_bulk_headers(headers: str, kind: str) -> None:
    subject = "" if headers.startswith("Subject:") else "Subject: hello\r\n"
    raw = (
        f"From: a@example.org\r\nTo: s@shop.example\r\n{subject}{headers}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n"
    ).encode()
    assert parse_message(raw, max_attachment_bytes=1000).kind == kind


def test_bounces_name_the_original_message() -> None:
    failed = load("bounce_dsn.eml").bounce
    assert failed is not None and failed.failed
    assert failed.original_ids == ("original-outbound-1@shop.example",)
    assert "5.1.1" in failed.reason and "nobody@example.org" in failed.reason
    delayed = load("bounce_delayed.eml").bounce
    assert delayed is not None and not delayed.failed  # Action: delayed is no failure
    assert delayed.original_ids == ("original-outbound-2@shop.example",)
    plain = load("bounce_plain_daemon.eml").bounce
    assert plain is not None and plain.failed
    assert plain.original_ids == ("original-outbound-3@shop.example",)


def test_malformed_headers_never_crash() -> None:
    mail = load("malformed_headers.eml")
    assert mail.from_address is None  # nothing there could be answered
    assert mail.message_id is None
    assert mail.external_id.endswith("@" + HASH_DOMAIN)
    assert mail.external_id == load("malformed_headers.eml").external_id  # stable
    assert mail.date is None
    assert mail.subject is not None and "\n" not in mail.subject
    assert set(mail.references) == {"a@b", "c@d"}
    assert "Café crème" in mail.text


def test_missing_sender_and_unterminated_multipart() -> None:
    mail = load("missing_from_and_id.eml")
    assert mail.from_address is None
    assert "body without an end boundary" in mail.text


@pytest.mark.parametrize(
    "raw", [b"", b"   \r\n", b"\r\n\r\nonly a body", b"no headers at all, just text"]
)
def test_not_mail_is_a_clear_error(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(raw, max_attachment_bytes=1000)


def test_message_id_helpers() -> None:
    assert normalize_message_id(" <abc@host> ") == "abc@host"
    assert normalize_message_id("abc@host") == "abc@host"
    assert normalize_message_id("<>") is None
    assert normalize_message_id("no id") is None
    assert message_ids("<a@b>\r\n <c@d> <a@b>") == ("a@b", "c@d")
    assert message_ids("a@b c@d") == ("a@b", "c@d")
