"""JSON that arrives from outside (API bodies, webchat frames, providers' webhooks): decoded
with limits, so that no input can make the decoder or what reads its result fail, and
checked for text that cannot be stored or sent on.

``loads`` refuses what is not UTF-8, what is not JSON (NaN and Infinity included) and
values nested deeper than ``MAX_DEPTH`` (the standard decoder would otherwise raise
RecursionError, or pass a value that fails later in a serialiser). ``refused_text`` names
where a decoded value holds NUL or a lone surrogate (valid in JSON's escapes, invalid in
UTF-8: it cannot be stored or written back out).
"""

from __future__ import annotations

import json
import re
from typing import Any

# Far more than any body or frame of this gateway needs, far less than the decoder's limit.
MAX_DEPTH = 64

# Escapes that can decode to NUL or to a surrogate: only then is the value looked into.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_SUSPECT_ESCAPE_BYTES = re.compile(_SUSPECT_ESCAPE.pattern.encode())
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class JsonRefused(ValueError):
    """The input is not acceptable JSON. ``not_utf8`` tells bytes that are not UTF-8 apart
    from text that is not JSON; ``reason`` says why, for the one who sent it."""

    def __init__(self, reason: str, *, not_utf8: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_utf8 = not_utf8


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The decoded value; raises JsonRefused (never RecursionError) otherwise."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRefused(f"not UTF-8 (byte {exc.start})", not_utf8=True) from None
    else:
        text = data
    too_deep = JsonRefused(f"nested more than {max_depth} levels deep")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:
        raise JsonRefused(str(exc)) from None
    # Counting brackets is fast; the value is walked only when it could be too deep.
    if text.count("[") + text.count("{") > max_depth and depth(value) > max_depth:
        raise too_deep
    return value


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in a decoded value (a scalar: 0). Iterative, so
    any depth can be measured."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            items: Any = item.values()
        elif isinstance(item, list):
            items = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in items if isinstance(child, dict | list))
    return deepest


def refused_text(
    data: str | bytes, value: Any, *, nul_allowed: frozenset[str] = frozenset()
) -> tuple[str, str] | None:
    """Where the decoded ``value`` of ``data`` holds text that cannot be taken, and why:
    (a dotted path, "" for the value itself, and the problem); None when it holds none.
    NUL has no meaning in text and cannot be stored everywhere (PostgreSQL refuses it);
    it is allowed under keys in ``nul_allowed`` (text whose control characters are removed
    anyway). A lone surrogate never is."""
    suspect = (
        _SUSPECT_ESCAPE.search(data)
        if isinstance(data, str)
        else _SUSPECT_ESCAPE_BYTES.search(data)
    )
    if suspect is None:
        return None
    return _walk(value, "", nul_allowed, nul_ok=False)


def _problem(text: str, nul_ok: bool) -> str | None:
    if "\x00" in text and not nul_ok:
        return "text may not contain U+0000 (NUL)"
    if _SURROGATE.search(text) is not None:
        return "text may not contain a lone surrogate (U+D800 to U+DFFF)"
    return None


def _walk(
    value: Any, path: str, nul_allowed: frozenset[str], *, nul_ok: bool
) -> tuple[str, str] | None:
    if isinstance(value, str):
        problem = _problem(value, nul_ok)
        return None if problem is None else (path, problem)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _problem(key, False)
            if problem is not None:
                return (f"{path} (a key)" if path else "(a key)", problem)
            inner = f"{path}.{key}" if path else key
            found = _walk(item, inner, nul_allowed, nul_ok=nul_ok or key in nul_allowed)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            inner = f"{path}.{index}" if path else str(index)
            found = _walk(item, inner, nul_allowed, nul_ok=nul_ok)
            if found is not None:
                return found
    return None
