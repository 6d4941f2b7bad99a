"""Property tests of what POST /v1/conversations reads: any JSON gives a StartConversation
or a ValidationError (a 400), never another exception; an address accepted is one bare,
deliverable address that cannot add a header or a recipient; a phone accepted is E.164."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.email.render import checked_address
from gateway.api.schemas import Recipient, StartConversation

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ADDRESSY = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda a, b, c: f"{a}@{b}.{c}",
        st.text(max_size=20),
        st.text(max_size=20),
        st.text(max_size=6),
    ),
    st.sampled_from(
        [
            "an@example.org",
            "AN@Example.ORG ",
            "an@example.org\r\nBcc: x@y.z",
            "Nguyễn <an@example.org>",
            "an@example.org,b@example.org",
            "an@example..org",
            "an.@example.org",
            "an@example.org.",
            "\u0000@example.org",
            "ngọc@ví-dụ.vn",
        ]
    ),
)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@FUZZ
@given(email=ADDRESSY)
def test_an_accepted_address_is_one_bare_address(email: str) -> None:
    try:
        found = Recipient(email=email)
    except ValidationError:
        return
    address = found.email
    assert address is not None
    assert address == address.strip().lower()
    assert address.count("@") == 1
    assert not re.search(r"[\s,;<>()\[\]\\\"]", address)
    assert checked_address(address) == address


@FUZZ
@given(phone=st.one_of(st.text(max_size=20), st.from_regex(r"\+?[0-9 ().-]{0,18}")))
def test_an_accepted_phone_is_e164(phone: str) -> None:
    try:
        found = Recipient(phone=phone)
    except ValidationError:
        return
    # E.164: a country code, then digits, 15 at most (some countries have short numbers).
    assert found.phone is not None and re.fullmatch(r"\+[1-9][0-9]{3,14}", found.phone)


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(["channel_id", "contact_id", "to", "text", "parts", "subject", "x"]),
        st.one_of(
            JSONISH,
            st.dictionaries(st.sampled_from(["email", "phone", "external_id"]), JSONISH),
        ),
    )
)
def test_any_body_parses_or_is_a_validation_error(body: dict[str, Any]) -> None:
    try:
        found = StartConversation.model_validate(body)
    except ValidationError:
        return
    assert (found.contact_id is None) != (found.to is None)
    assert (found.text is None) != (found.parts is None)
    assert found.subject is None or "\n" not in found.subject
