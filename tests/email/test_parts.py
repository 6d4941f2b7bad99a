"""The MIME walk: charsets of text parts, attachments and inline images, broken structure."""

from __future__ import annotations

import unicodedata

import pytest

from connectors.email.html import rewrite_cids
from connectors.email.parts import decode_text
from tests.email.helpers import load


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


def test_missing_sender_and_unterminated_multipart() -> None:
    mail = load("missing_from_and_id.eml")
    assert mail.from_address is None
    assert "body without an end boundary" in mail.text
