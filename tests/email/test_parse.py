"""Parsing a corpus of real-world mail shapes (tests/email/fixtures): clients' replies and
what is not mail at all. Headers, MIME parts, HTML and classification have their own
files (test_headers.py, test_parts.py, test_html.py, test_classify.py)."""

from __future__ import annotations

import unicodedata

import pytest

from connectors.email.parse import ParseError, parse_message
from connectors.email.quotes import extract_reply
from tests.email.helpers import load

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
    "raw", [b"", b"   \r\n", b"\r\n\r\nonly a body", b"no headers at all, just text"]
)
def test_not_mail_is_a_clear_error(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse_message(raw, max_attachment_bytes=1000)
