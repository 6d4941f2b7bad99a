"""Cursor pagination (design.md section 5): ``{"items": [...], "next_cursor": ...}``.

A cursor is opaque to clients: the key of the last item seen, encoded. A cursor that was
not made here is refused as malformed input.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from kernel.errors import Malformed

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a cursor-paginated list."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key inside a cursor; a cursor that was not made here is Malformed (400)."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)["k"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise Malformed("invalid cursor", code="invalid_cursor") from None
    if not isinstance(key, str):
        raise Malformed("invalid cursor", code="invalid_cursor")
    return key
