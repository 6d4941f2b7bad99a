"""Readers for values from providers' JSON: every value from the wire goes through one
of these, so a wrong type or a lone surrogate becomes a safe default, never an error."""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.text import clean_text

MAX_ID = 512  # Sender.external_id
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean(value: str) -> str:
    """Lone surrogates (valid in JSON, invalid in UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", value)


def obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str:
    return clean_text(clean(value)) if isinstance(value, str) else ""


def ident(value: Any) -> str | None:
    """A provider's id: a non-empty string (or a non-negative integer) of reasonable
    length."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        value = str(value)
    if not isinstance(value, str):
        return None
    value = clean(value).strip()
    return value if 0 < len(value) <= MAX_ID else None


def json_or_none(content: bytes) -> Any:
    """An answer's JSON, or None when it is not JSON."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return None
