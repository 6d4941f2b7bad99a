"""A small SSE reader for tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class SseEvent:
    id: str | None
    event: str | None
    data: Any


async def read_event(resp: aiohttp.ClientResponse) -> SseEvent | str:
    """The next event, or the text of a comment line."""
    fields: dict[str, str] = {}
    while True:
        raw = await resp.content.readline()
        if not raw:
            raise EOFError("stream ended")
        line = raw.decode().rstrip("\n")
        if line == "":
            if "data" in fields or "id" in fields:
                data = fields.get("data")
                return SseEvent(
                    fields.get("id"), fields.get("event"), json.loads(data) if data else None
                )
            fields.clear()
            continue
        if line.startswith(":"):
            if not fields:
                return line[1:].strip()
            continue
        key, _, value = line.partition(":")
        fields[key] = value.removeprefix(" ")


async def read_events(resp: aiohttp.ClientResponse, count: int) -> list[SseEvent]:
    events: list[SseEvent] = []
    while len(events) < count:
        item = await read_event(resp)
        if isinstance(item, SseEvent) and item.id is not None:
            events.append(item)
    return events
