"""Reading headers: Message-IDs, and broken headers that must never crash the parser."""

from __future__ import annotations

import base64

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.email.headers import message_ids, normalize_message_id
from connectors.email.parse import HASH_DOMAIN, parse_message
from tests.email.helpers import load

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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


def _word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _mail(**headers: str) -> bytes:
    lines = [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    lines += ["Message-ID: <m1@example.org>", "Subject: hi", "", "body", ""]
    return "\r\n".join(lines).encode()


def test_an_encoded_display_name_never_becomes_the_address() -> None:
    # The name decodes to a line break and a Bcc line: the standard parser refuses the
    # header, and the fallback must still take the address from <...> only.
    crafted = _word("Khách hàng\r\nBcc: victim@example.net")
    mail = parse_message(
        _mail(From=f"{crafted} <attacker@example.org>", To="support@shop.example"),
        max_attachment_bytes=1000,
    )
    assert mail.from_address == "attacker@example.org"
    assert mail.from_name is not None and mail.from_name.startswith("Khách hàng")
    assert "\r" not in mail.from_name and "\n" not in mail.from_name
    assert "victim@example.net" not in mail.recipients


def test_an_encoded_address_in_a_name_is_only_a_name() -> None:
    crafted = _word("<victim@example.net>")
    mail = parse_message(
        _mail(
            From=f"{crafted} <attacker@example.org>",
            To="support@shop.example",
            Cc=f"{_word('x@y.example')} <friend@example.org>",
        ),
        max_attachment_bytes=1000,
    )
    assert mail.from_address == "attacker@example.org"
    assert "friend@example.org" in mail.recipients
    assert "x@y.example" not in mail.recipients
    # Only an encoded word and no address part: nothing to answer.
    bare = parse_message(_mail(From=_word("victim@example.net")), max_attachment_bytes=1000)
    assert bare.from_address is None


@FUZZ
@given(name=st.text(max_size=40), local=st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True))
def test_the_sender_is_always_in_the_address_part(name: str, local: str) -> None:
    address = f"{local}@sender.example"
    mail = parse_message(_mail(From=f"{_word(name)} <{address}>"), max_attachment_bytes=1000)
    assert mail.from_address == address


def test_an_encoded_word_is_never_part_of_an_address() -> None:
    # The standard parser would decode these into the local part.
    for value in (f"{_word('victim')}@example.net", f"{_word('.')} an@example.org"):
        mail = parse_message(_mail(From=value), max_attachment_bytes=1000)
        assert mail.from_address is None, value
