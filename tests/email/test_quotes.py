"""Reply extraction over a table of shapes: quoted history and signatures are cut, the
customer's own words never are."""

from __future__ import annotations

import pytest

from connectors.email.quotes import extract_reply

CASES = [
    # Gmail, attribution wrapped over two lines
    (
        "Thanks!\n\nOn Mon, Jan 5, 2026 at 10:00 AM Shop Support <support@shop.example>\n"
        "wrote:\n\n> old text\n> more\n",
        "Thanks!",
    ),
    # Gmail in Vietnamese
    (
        "Vâng ạ.\n\nVào Th 3, 6 thg 1, 2026 vào lúc 09:15 Shop <s@shop.example> đã viết:\n"
        "> Bạn cần gì ạ?\n",
        "Vâng ạ.",
    ),
    # Outlook in Vietnamese
    (
        "Em gửi lại ảnh.\n\n________________________________\nTừ: Shop <s@shop.example>\n"
        "Đã gửi: Thứ Hai, 5 tháng 1, 2026 10:00\nĐến: em@example.vn\nChủ đề: Ảnh\n\nNội dung cũ\n",
        "Em gửi lại ảnh.",
    ),
    # Outlook desktop with the Original Message separator
    (
        "See below.\n\n-----Original Message-----\nFrom: Shop\nSent: Monday\nTo: me\n\nold\n",
        "See below.",
    ),
    # French and German clients
    ("Merci.\n\nLe lun. 5 janv. 2026 à 10:00, Shop <s@shop.example> a écrit :\n> x\n", "Merci."),
    ("Danke.\n\nAm 05.01.26 um 10:00 schrieb Shop:\n> x\n", "Danke."),
    # A trailing quote block without attribution
    ("Fine by me.\n\n> earlier\n> text\n", "Fine by me."),
    # Mobile signatures
    ("Ok\n\nGửi từ iPhone của tôi\n", "Ok"),
    ("Ok\n\nGet Outlook for Android\n", "Ok"),
]


@pytest.mark.parametrize(("text", "new"), CASES)
def test_new_part_is_separated(text: str, new: str) -> None:
    reply = extract_reply(text)
    assert reply.text == new
    assert reply.stripped


@pytest.mark.parametrize(
    "text",
    [
        # inline answers between quotes: everything the customer wrote must stay
        "On Mon, Shop wrote:\n> Size?\nM please\n> Colour?\nBlue\n",
        # bottom-posting
        "On Mon, Shop wrote:\n> Size?\n\nM please\n",
        # "from:" inside a normal sentence is no header block
        "From: the shop I bought it at, it came broken.\nCan you help?\n",
        # a plain message
        "Xin chào,\ntôi muốn hỏi về đơn hàng.\n",
    ],
)
def test_customer_words_are_never_cut(text: str) -> None:
    reply = extract_reply(text)
    assert reply.text == text.strip()
    assert not reply.stripped


def test_a_reply_that_is_only_a_quote_keeps_everything() -> None:
    text = "On Mon, Shop wrote:\n> everything\n"
    assert extract_reply(text).text == text.strip()


def test_dash_dash_signature() -> None:
    reply = extract_reply("Hello\n\n-- \nAn Nguyen\n0912 345 678\n")
    assert reply.text == "Hello"
    assert reply.signature == "-- \nAn Nguyen\n0912 345 678"
