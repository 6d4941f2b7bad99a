"""The inbox: queued and assigned conversations (resolved ones through the filter), kept
live by the event stream, each with its contact, channel, wait and SLA; an agent's token
also gets its own presence switch here."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.console.pages import Pages, View
from gateway.console.shown import duration, since, when
from gateway.console.texts import register
from kernel.errors import NotFound

pages = Pages()
LIST = ("GET", "/v1/conversations")
CONTACT = ("GET", "/v1/contacts/{id}")
QUEUE = ("GET", "/v1/queue")
AGENT = ("GET", "/v1/agents/{id}")
AGENTS = ("GET", "/v1/agents")
PRESENCE = ("PUT", "/v1/agents/{id}/presence")
CHANNELS = ("GET", "/v1/channels")

STATUSES = ("queued", "assigned", "resolved")
PRESENCES = ("online", "away", "offline")
# Rows per list (each row reads its contact: a page stays well inside the token's rate).
ROWS = 50

register(
    {
        "inbox.title": ("Hộp thư", "Inbox"),
        "inbox.queued": ("Đang chờ", "Queued"),
        "inbox.assigned": ("Đã giao", "Assigned"),
        "inbox.resolved": ("Đã giải quyết", "Resolved"),
        "inbox.empty": ("Không có cuộc hội thoại nào.", "No conversations."),
        "inbox.filter": ("Lọc", "Filter"),
        "inbox.status": ("Trạng thái", "Status"),
        "inbox.open": ("Đang mở (chờ và đã giao)", "Open (queued and assigned)"),
        "inbox.channel": ("Kênh", "Channel"),
        "inbox.all_channels": ("Mọi kênh", "All channels"),
        "inbox.mine": ("Chỉ của tôi", "Mine only"),
        "inbox.contact": ("Khách hàng", "Contact"),
        "inbox.subject": ("Tiêu đề", "Subject"),
        "inbox.last": ("Tin cuối", "Last message"),
        "inbox.assignee": ("Người phụ trách", "Assignee"),
        "inbox.priority": ("Ưu tiên", "Priority"),
        "inbox.waiting": ("Đã chờ", "Waiting"),
        "inbox.sla": ("SLA", "SLA"),
        "inbox.sla_due": ("hạn {at}", "due {at}"),
        "inbox.sla_breached": ("vi phạm: {what}", "breached: {what}"),
        "inbox.place": ("vị trí {n}", "place {n}"),
        "inbox.nobody": ("chưa có", "nobody"),
        "inbox.presence": ("Trạng thái của tôi", "My presence"),
        "inbox.presence.online": ("Trực tuyến", "Online"),
        "inbox.presence.away": ("Vắng mặt", "Away"),
        "inbox.presence.offline": ("Ngoại tuyến", "Offline"),
        "inbox.presence.set": ("Đổi", "Set"),
    }
)


def _filters(view: View) -> dict[str, str]:
    """The filters asked for, as given (bad values are the API's to refuse)."""
    q = view.request.query
    found = {}
    status = q.get("status", "")
    if status:
        found["status"] = status
    channel = q.get("channel_id", "").strip()
    if channel:
        found["channel_id"] = channel
    if q.get("mine") == "1":
        found["mine"] = "1"
    return found


def _own_agent(view: View) -> str | None:
    return view.principal.agent_id


async def _contacts(view: View, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    names: dict[str, dict[str, Any]] = {}
    if not view.allows(*CONTACT):
        return names
    for contact_id in dict.fromkeys(r["contact_id"] for r in rows):
        try:
            names[contact_id] = await view.call(*CONTACT, params={"id": contact_id})
        except NotFound:
            continue
    return names


async def _queue(view: View) -> dict[str, dict[str, Any]]:
    if not view.allows(*QUEUE):
        return {}
    found = await view.call(*QUEUE, query={"limit": "1000"})
    return {item["conversation"]["id"]: item for item in found["items"]}


async def _lists(view: View) -> dict[str, Any]:
    filters = _filters(view)
    statuses = [filters["status"]] if "status" in filters else ["queued", "assigned"]
    query: dict[str, str] = {"limit": str(ROWS)}
    if "channel_id" in filters:
        query["channel_id"] = filters["channel_id"]
    mine = filters.get("mine") == "1" and _own_agent(view) is not None
    if mine:
        query["assignee_id"] = _own_agent(view) or ""
    lists: dict[str, list[dict[str, Any]]] = {}
    for status in statuses:
        page = await view.call(*LIST, query={**query, "status": status})
        lists[status] = page["items"]
    # One read per list: a conversation that moved between the two reads is in both, and
    # the later read is the newer.
    seen: set[str] = set()
    for status in reversed(statuses):
        lists[status] = [c for c in lists[status] if c["id"] not in seen]
        seen.update(c["id"] for c in lists[status])
    rows = [c for items in lists.values() for c in items]
    queue = await _queue(view) if "queued" in lists else {}
    agents: dict[str, str] = {}
    if view.allows(*AGENTS):
        found = await view.call(*AGENTS, query={"limit": "200"})
        agents = {a["id"]: a.get("name") or a["id"] for a in found["items"]}
    return {
        "agent_names": agents,
        "statuses": statuses,
        "lists": lists,
        "contacts": await _contacts(view, rows),
        "queue": queue,
        "filters": filters,
        "query": urlencode(filters),
        "when": when,
        "duration": duration,
        "since": since,
    }


async def _page_values(view: View) -> dict[str, Any]:
    values = await _lists(view)
    channels: list[str] = []
    if view.allows(*CHANNELS):
        found = await view.call(*CHANNELS)
        channels = [c["id"] for c in found["items"]]
    else:
        channels = sorted({c["channel_id"] for items in values["lists"].values() for c in items})
    agent = None
    own = _own_agent(view)
    if own is not None and view.allows(*AGENT):
        try:
            agent = await view.call(*AGENT, params={"id": own})
        except NotFound:
            agent = None
    return {
        **values,
        "channels": channels,
        "all_statuses": STATUSES,
        "agent": agent,
        "presences": PRESENCES,
    }


@pages.get("/inbox", needs=LIST)
async def inbox(view: View) -> web.StreamResponse:
    return view.render("inbox.html", **await _page_values(view))


@pages.get("/inbox/list", needs=LIST)
async def inbox_list(view: View) -> web.StreamResponse:
    """The lists alone (htmx swaps them in when an event says they changed)."""
    return view.render("inbox_list.html", **await _lists(view))
