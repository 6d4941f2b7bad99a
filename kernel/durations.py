"""Durations in configuration: seconds as a number, or text such as "90s", "5m", "2h", "7d"."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_duration(value: Any) -> float:
    """Seconds in a duration; raises ValueError with a readable reason."""
    if isinstance(value, bool):
        raise ValueError("a duration is seconds or text like 90s, 5m, 2h, 7d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("a duration is seconds or text like 90s, 5m, 2h, 7d")
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ValueError("empty duration")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _PART.findall(text)
    if "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration like 90s, 5m, 2h, 7d or 1h30m")
    return sum(float(n) * _UNITS[u] for n, u in parts)


Duration = Annotated[float, BeforeValidator(parse_duration)]
