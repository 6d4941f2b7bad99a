"""The inbox: queued and assigned conversations, kept live by the event stream."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.console.pages import Pages, View
from gateway.console.texts import register

pages = Pages()
LIST = ("GET", "/v1/conversations")

register(
    {
        "inbox.title": ("Hộp thư", "Inbox"),
        "inbox.queued": ("Đang chờ", "Queued"),
        "inbox.assigned": ("Đã giao", "Assigned"),
        "inbox.empty": ("Không có cuộc hội thoại nào.", "No conversations."),
    }
)


async def _conversations(view: View, status: str) -> list[dict[str, Any]]:
    page = await view.call(*LIST, query={"status": status, "limit": "100"})
    items: list[dict[str, Any]] = page["items"]
    return items


@pages.get("/inbox", needs=LIST)
async def inbox(view: View) -> web.StreamResponse:
    return view.render("inbox.html", **await _lists(view))


@pages.get("/inbox/list", needs=LIST)
async def inbox_list(view: View) -> web.StreamResponse:
    """The lists alone (htmx swaps them in when an event says they changed)."""
    return view.render("inbox_list.html", **await _lists(view))


async def _lists(view: View) -> dict[str, Any]:
    return {
        "queued": await _conversations(view, "queued"),
        "assigned": await _conversations(view, "assigned"),
    }
