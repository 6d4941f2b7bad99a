"""The durable event log's entries (design.md section 6), kept as the JSON they are sent as.

An event's id is its place in the log, zero-padded so that ids compare the same as
strings and as numbers.
"""

from __future__ import annotations

import json
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any

from pydantic import BaseModel

from kernel.models import Frozen, rfc3339


class EventEnvelope(Frozen):
    """How an event is sent (SSE data, webhook body): ``id`` is monotonic in the log."""

    id: str
    type: str
    created_at: datetime
    data: dict[str, Any]


class RawJSON(str):
    """A value that is already JSON text, to be embedded as it is by compose_json."""

    __slots__ = ()


def compose_json(fields: dict[str, Any]) -> str:
    """A JSON object whose model values are serialised by pydantic (in Rust), once."""
    items = []
    for key, value in fields.items():
        if isinstance(value, RawJSON):
            text = str.__str__(value)
        elif isinstance(value, BaseModel):
            text = value.model_dump_json()
        else:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
        items.append(f"{encode_basestring(key)}:{text}")
    return "{" + ",".join(items) + "}"


class Event:
    """One entry of the durable event log, kept as the JSON it is sent as.

    The JSON is made once, when the event is written; every reader (SSE clients,
    webhooks) reuses it. ``data`` parses it on demand for code that needs the values.
    """

    __slots__ = ("_data", "_envelope", "conversation_id", "created_at", "data_json", "seq", "type")

    def __init__(
        self,
        seq: int,
        type: str,
        created_at: datetime,
        data_json: str,
        conversation_id: str | None = None,
    ) -> None:
        self.seq = seq
        self.type = type
        self.created_at = created_at
        self.data_json = data_json
        self.conversation_id = conversation_id
        self._envelope: str | None = None
        self._data: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return format_event_id(self.seq)

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = json.loads(self.data_json)
        return self._data

    def envelope(self) -> str:
        """``{"id", "type", "created_at", "data"}`` as JSON text."""
        if self._envelope is None:
            self._envelope = (
                f'{{"id":"{self.id}","type":{encode_basestring(self.type)},'
                f'"created_at":"{rfc3339(self.created_at)}","data":{self.data_json}}}'
            )
        return self._envelope

    def __repr__(self) -> str:
        return f"Event({self.id} {self.type})"


EVENT_TYPES = (
    "message.received",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.reacted",
    "message.updated",
    "conversation.created",
    "conversation.queued",
    "conversation.assigned",
    "conversation.transferred",
    "conversation.resolved",
    "conversation.reopened",
    "conversation.handover",
    "conversation.window_closing",
    "sla.breached",
    "survey.answered",
    "sla.warning",
    "contact.created",
    "contact.merged",
    "contact.erased",
    "contact.updated",
    "contact.unmerged",
    "agent.presence_changed",
    "channel.state_changed",
    "webhook.disabled",
    "webhook.enabled",
)

EVENT_ID_WIDTH = 16


def format_event_id(seq: int) -> str:
    """Event ids are zero-padded decimals: they compare the same as strings and as numbers."""
    return str(seq).zfill(EVENT_ID_WIDTH)
