"""What the connectors of providers with an HTTP API share on the wire: readers for
values from providers' JSON (every value goes through one of these, so a wrong type or a
lone surrogate becomes a safe default, never an error), decoding a webhook body into a JSON
object and the error a body that is not the provider's gets, and how a request that never
got an answer is told apart."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from connectors.errors import TransientError
from kernel import jsontext
from kernel.jsontext import JsonRefused
from kernel.text import clean_text, is_web_url

MAX_ID = 512  # Sender.external_id
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class PayloadError(Exception):
    """The body is not a webhook payload of the provider; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode_body(body: bytes) -> dict[str, Any]:
    """A webhook body as a JSON object; raises PayloadError with the reason otherwise:
    ``not_utf8``, ``bad_json`` (also for NaN / Infinity and nesting too deep) or
    ``bad_payload`` (valid JSON that is not an object)."""
    try:
        data = jsontext.loads(body)
    except JsonRefused as exc:
        if exc.not_utf8:
            raise PayloadError("not_utf8", f"the body is {exc.reason}") from None
        raise PayloadError("bad_json", f"the body is not JSON: {exc.reason}") from None
    if not isinstance(data, dict):
        raise PayloadError("bad_payload", "the body is not a JSON object")
    return data


async def reach(service: str, request: Awaitable[httpx.Response]) -> httpx.Response:
    """The provider's answer; TransientError when there was none (timeout, network)."""
    try:
        return await request
    except httpx.TimeoutException as exc:
        raise TransientError(
            f"{service} did not answer in time ({type(exc).__name__})", code="timeout"
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise TransientError(
            f"{service} could not be reached ({type(exc).__name__})", code="network"
        ) from None


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


def is_number(value: Any) -> bool:
    """An int or a float (a bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def url(value: Any) -> str | None:
    """An http(s) URL of reasonable length."""
    if not isinstance(value, str):
        return None
    found = clean(value).strip()
    return found if is_web_url(found) else None


def file_name(url: str) -> str | None:
    """The last segment of a URL's path, unquoted and cleaned, as a file name (or None)."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return clean_text(clean(name))[:255] or None


def json_or_none(content: bytes) -> Any:
    """An answer's JSON, or None when it is not JSON."""
    try:
        return jsontext.loads(content)
    except JsonRefused:
        return None
