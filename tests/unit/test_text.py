from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.models import Message, TextPart
from kernel.text import (
    InvalidPhoneNumber,
    clean_text,
    fold_name,
    name_tails,
    nfc,
    normalize_email,
    normalize_phone,
)


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0912345678", "+84912345678"),
        ("0912 345 678", "+84912345678"),
        ("091.234.5678", "+84912345678"),
        ("84912345678", "+84912345678"),
        ("+84 912 345 678", "+84912345678"),
        ("0084912345678", "+84912345678"),
        ("(+84) 91-234-5678", "+84912345678"),
        ("028 3822 1234", "+842838221234"),
        ("0243 826 1234", "+842438261234"),
        ("+1 650 253 0000", "+16502530000"),
        ("０９１２３４５６７８", "+84912345678"),
    ],
)
def test_phone_numbers_become_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize("raw", ["", "   ", "abc", "0123", "+", "12", "+84 1"])
def test_impossible_phone_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw)


@given(st.text(max_size=40))
def test_phone_parser_only_ever_raises_its_own_error(raw: str) -> None:
    try:
        out = normalize_phone(raw)
    except InvalidPhoneNumber:
        return
    assert out.startswith("+")
    assert out[1:].isdigit()


def test_vietnamese_is_nfc_everywhere() -> None:
    decomposed = unicodedata.normalize("NFD", "Tiếng Việt có dấu: Nguyễn Thị Ánh")
    assert decomposed != nfc(decomposed)
    part = TextPart(text=decomposed)
    assert part.text == unicodedata.normalize("NFC", decomposed)
    assert len(part.text) < len(decomposed)


@given(st.text())
def test_clean_text_is_nfc_and_idempotent(text: str) -> None:
    out = clean_text(text)
    assert unicodedata.is_normalized("NFC", out)
    assert clean_text(out) == out
    assert not any(ord(c) < 32 and c not in "\t\n\r" for c in out)


@pytest.mark.parametrize(
    ("raw", "out"),
    [
        ("An@Example.VN", "an@example.vn"),
        ("  an@example.vn ", "an@example.vn"),
        ("an", None),
        ("an@localhost", None),
        ("@example.vn", None),
        ("a b@example.vn", None),
        ("a@@example.vn", None),
        ("a@example.", None),
        (None, None),
    ],
)
def test_email_normalisation(raw: str | None, out: str | None) -> None:
    assert normalize_email(raw) == out


def test_message_parts_round_trip_through_json() -> None:
    data = {
        "id": "msg_1",
        "conversation_id": "cv_1",
        "channel_id": "webchat",
        "direction": "inbound",
        "author": {"type": "contact", "id": "ct_1"},
        "parts": [
            {"type": "text", "text": "xin chào"},
            {
                "type": "image",
                "url": "https://x/y.png",
                "name": "y.png",
                "mime": "image/png",
                "size": 5,
            },
            {"type": "location", "latitude": 10.77, "longitude": 106.7},
            {"type": "link", "url": "https://shop.example", "title": "Shop"},
        ],
        "created_at": "2026-11-23T10:00:00Z",
        "status": "received",
    }
    msg = Message.model_validate(data)
    assert Message.model_validate_json(msg.model_dump_json()) == msg
    assert msg.model_dump(mode="json")["created_at"] == "2026-11-23T10:00:00Z"


@pytest.mark.parametrize(
    "part",
    [
        {"type": "text", "text": ""},
        {"type": "location", "latitude": 91, "longitude": 0},
        {"type": "image", "size": -1},
        {"type": "gif", "url": "x"},
    ],
)
def test_invalid_parts_are_refused(part: dict[str, object]) -> None:
    from pydantic import TypeAdapter, ValidationError

    from kernel.models import Part

    with pytest.raises(ValidationError):
        TypeAdapter(Part).validate_python(part)


def _reference_ulid_encoding(value: int) -> str:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(alphabet[(value >> (5 * i)) & 31] for i in reversed(range(26)))


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_ulid_encoding_matches_the_reference(value: int) -> None:
    from kernel.ids import _encode128

    assert _encode128(value) == _reference_ulid_encoding(value)


def test_ids_sort_by_creation() -> None:
    from kernel.ids import new_message_id

    ids = [new_message_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5000
    assert all(len(i) == len("msg_") + 26 for i in ids)


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("Nguyễn Văn An", "nguyen van an"),
        ("ĐẶNG THỊ Ngọc", "dang thi ngoc"),
        ("Ngo\u0302 Ba\u0309o Cha\u0302u", "ngo bao chau"),  # decomposed (NFD) input
        ("  Trần_Đức-Anh (VIP) ", "tran duc anh vip"),
        ("", ""),
        (None, ""),
    ],
)
def test_names_fold_without_diacritics_or_case(name: str | None, folded: str) -> None:
    assert fold_name(name) == folded


def test_a_name_s_tails_start_at_each_word() -> None:
    assert name_tails("Nguyễn Văn An") == ["an", "nguyen van an", "van an"]
    assert name_tails("An An") == ["an", "an an"]
    assert name_tails(None) == []


@given(st.text())
def test_folding_is_idempotent_and_keeps_only_words(text: str) -> None:
    folded = fold_name(text)
    assert fold_name(folded) == folded
    assert "%" not in folded and "_" not in folded  # safe inside a LIKE pattern
    assert name_tails(folded) == name_tails(text)
    for tail in name_tails(text):
        assert 0 < len(tail) <= 200
        assert folded.endswith(tail) or len(tail) == 200
