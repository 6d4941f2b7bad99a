"""Agents: presence, load against capacity (per channel type and in total), skills and
languages, kept live by the event stream; presence changed by admins, or by an agent for
itself."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.api.auth import MANAGE
from gateway.console.pages import ROOT, Pages, View, redirect
from gateway.console.texts import register, translator
from kernel.errors import Malformed

pages = Pages()
LIST = ("GET", "/v1/agents")
CONVERSATIONS = ("GET", "/v1/conversations")
PRESENCE = ("PUT", "/v1/agents/{id}/presence")
STATES = ("online", "away", "offline")
TOTAL = "total"
# Pages of 200 read at most (agents, and assigned conversations to count the load).
MAX_PAGES = 100

register(
    {
        "agents.title": ("Nhân viên", "Agents"),
        "agents.empty": ("Chưa có nhân viên nào.", "No agents yet."),
        "agents.agent": ("Nhân viên", "Agent"),
        "agents.presence": ("Trạng thái", "Presence"),
        "agents.load": ("Đang xử lý / sức chứa", "Load / capacity"),
        "agents.total": ("Tổng", "Total"),
        "agents.skills": ("Kỹ năng", "Skills"),
        "agents.languages": ("Ngôn ngữ", "Languages"),
        "agents.since": ("từ {at}", "since {at}"),
        "agents.set": ("Đặt", "Set"),
        "agents.you": ("bạn", "you"),
        "agents.online": ("Trực tuyến", "Online"),
        "agents.away": ("Vắng mặt", "Away"),
        "agents.offline": ("Ngoại tuyến", "Offline"),
        "agents.unlimited": ("không giới hạn", "no limit"),
        "agents.load_note": (
            "Đang xử lý: số cuộc hội thoại đang được giao cho nhân viên, theo loại kênh.",
            "Load: the conversations assigned to the agent now, by channel type.",
        ),
        "agents.bad_presence": ("Trạng thái không hợp lệ.", "Not a presence."),
    }
)


async def _all(view: View, method: str, path: str, query: dict[str, str]) -> list[Any]:
    items: list[Any] = []
    cursor = ""
    for _ in range(MAX_PAGES):
        page = await view.call(method, path, query={**query, "limit": "200", "cursor": cursor})
        items.extend(page["items"])
        cursor = page.get("next_cursor") or ""
        if not cursor:
            break
    return items


async def _agents(view: View) -> dict[str, Any]:
    agents = await _all(view, *LIST, {})
    assigned = await _all(view, *CONVERSATIONS, {"status": "assigned"})
    types = {str(cid): kind.value for cid, kind in view.ctx.channels.types().items()}
    loads: dict[str, dict[str, int]] = {}
    for conversation in assigned:
        agent_id = conversation.get("assignee_id")
        if agent_id is None:
            continue
        kind = types.get(conversation["channel_id"], conversation["channel_id"])
        load = loads.setdefault(agent_id, {})
        load[kind] = load.get(kind, 0) + 1
    principal = view.principal
    manages = bool(principal.scopes & MANAGE)
    shown = []
    for agent in agents:
        load = loads.get(agent["id"], {})
        capacity = agent.get("capacity") or {}
        kinds = sorted({k for k in capacity if k != TOTAL} | set(load))
        total = sum(load.values())
        rows = [{"kind": k, "load": load.get(k, 0), "capacity": capacity.get(k)} for k in kinds] + [
            {"kind": TOTAL, "load": total, "capacity": capacity.get(TOTAL)}
        ]
        shown.append(
            {
                **agent,
                "loads": rows,
                "total_load": total,
                "mine": principal.agent_id == agent["id"],
                "may_set": manages or principal.agent_id == agent["id"],
            }
        )
    return {"agents": shown, "states": STATES}


@pages.get("/agents", needs=LIST)
async def agent_list(view: View) -> web.StreamResponse:
    return view.render("agents.html", **await _agents(view))


@pages.get("/agents/list", needs=LIST)
async def agent_list_fragment(view: View) -> web.StreamResponse:
    """The table alone (htmx swaps it in when an agent or a conversation changes)."""
    return view.fragment("agents_list.html", **await _agents(view))


@pages.post("/agents/{id}/presence", needs=PRESENCE)
async def set_presence(view: View) -> web.StreamResponse:
    """An agent's presence (the API lets an agent's token set its own only); back to the
    page the form was on (the agents' list, or an agent's own switch in the inbox)."""
    form = await view.form()
    status = form.get("status")
    if status not in STATES:
        raise Malformed(translator(view.language)("agents.bad_presence"), code="validation_error")
    await view.call(*PRESENCE, params={"id": view.param("id")}, body={"status": status})
    back = f"{ROOT}/inbox" if form.get("back") == "inbox" else f"{ROOT}/agents"
    return redirect(back)
