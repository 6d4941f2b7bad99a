"""JSON from outside: decoded with limits, text that cannot be stored found."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.jsontext import MAX_DEPTH, JsonRefused, depth, loads, refused_text
from kernel.text import is_web_url


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_depth_limits() -> None:
    assert loads(nested(MAX_DEPTH)) is not None
    assert depth(loads(nested(MAX_DEPTH))) == MAX_DEPTH
    for levels in (MAX_DEPTH + 1, 500, 100_000):
        with pytest.raises(JsonRefused, match="nested more than"):
            loads(nested(levels))
    # Many brackets side by side are not deep.
    wide = "[" + ",".join(["[]"] * 5000) + "]"
    assert len(loads(wide)) == 5000
    assert depth({"a": [{"b": 1}], "c": 2}) == 3


@pytest.mark.parametrize(
    ("data", "not_utf8"),
    [(b"\xff{}", True), (b"{", False), (b'{"a": NaN}', False), ("[Infinity]", False)],
)
def test_refusals(data: str | bytes, not_utf8: bool) -> None:
    with pytest.raises(JsonRefused) as caught:
        loads(data)
    assert caught.value.not_utf8 is not_utf8


def test_text_that_cannot_be_taken() -> None:
    cases: list[tuple[str, tuple[str, str] | None]] = [
        ('{"a": "x"}', None),
        ('{"a": "\\ud83d\\ude00"}', None),  # a pair is one character
        ('{"a": ["ok", {"b": "\\ud800"}]}', ("a.1.b", "surrogate")),
        ('{"\\udfff": 1}', ("(a key)", "surrogate")),
        ('{"a": {"\\u0000": 1}}', ("a (a key)", "NUL")),
        ('"\\u0000"', ("", "NUL")),
        ('{"text": "a\\u0000b"}', None),  # NUL allowed there
        ('{"text": "a\\udc00b"}', ("text", "surrogate")),  # a surrogate never is
        ('{"x": {"text": "\\u0000"}}', None),
    ]
    for raw, expected in cases:
        found = refused_text(raw, json.loads(raw), nul_allowed=frozenset({"text"}))
        if expected is None:
            assert found is None, raw
        else:
            assert found is not None, raw
            assert found[0] == expected[0] and expected[1] in found[1], (raw, found)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_any_input_decodes_or_is_refused(data: str | bytes) -> None:
    try:
        value = loads(data)
    except JsonRefused:
        return
    refused_text(data, value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_json_the_standard_encoder_writes_comes_back(value: Any) -> None:
    text = json.dumps(value)
    try:
        decoded = loads(text)
    except JsonRefused:
        assert depth(value) > MAX_DEPTH
        return
    assert decoded == value
    found = refused_text(text, decoded)
    has_bad = "\\u0000" in text or any(
        0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(value, ensure_ascii=False)
    )
    assert (found is not None) == has_bad


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://shop.example/áo", True),
        ("HTTP://x.example", True),
        ("javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("https://", False),
        ("//x.example/a", False),
        ("https://x.example/\ra", False),
        ("https://[::1", False),
        ("https://x.example/" + "a" * 9000, False),
    ],
)
def test_web_urls(url: str, ok: bool) -> None:
    assert is_web_url(url) is ok
