"""Reading headers: Message-IDs, and broken headers that must never crash the parser."""

from __future__ import annotations

from connectors.email.headers import message_ids, normalize_message_id
from connectors.email.parse import HASH_DOMAIN
from tests.email.helpers import load


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


def test_message_id_helpers() -> None:
    assert normalize_message_id(" <abc@host> ") == "abc@host"
    assert normalize_message_id("abc@host") == "abc@host"
    assert normalize_message_id("<>") is None
    assert normalize_message_id("no id") is None
    assert message_ids("<a@b>\r\n <c@d> <a@b>") == ("a@b", "c@d")
    assert message_ids("a@b c@d") == ("a@b", "c@d")
