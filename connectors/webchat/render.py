"""Pure rendering of server frames for the webchat protocol."""

from __future__ import annotations

import json
from typing import Any

from kernel.models import Message


def _dump(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def session(token: str, visitor_id: str, conversation_id: str | None) -> str:
    return _dump(
        {
            "type": "session",
            "token": token,
            "visitor_id": visitor_id,
            "conversation_id": conversation_id,
        }
    )


def ack(client_id: str, message_id: str) -> str:
    return _dump({"type": "ack", "client_id": client_id, "message_id": message_id})


def history(messages: list[Message]) -> str:
    return _dump({"type": "history", "messages": [m.model_dump(mode="json") for m in messages]})


def message(msg: Message) -> str:
    return _dump({"type": "message", "message": msg.model_dump(mode="json")})


def typing(on: bool) -> str:
    return _dump({"type": "typing", "state": "on" if on else "off"})


def error(code: str, text: str, client_id: str | None = None) -> str:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": text}
    if client_id is not None:
        frame["client_id"] = client_id
    return _dump(frame)
