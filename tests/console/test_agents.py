"""The agents page: presence, load against capacity per channel type and in total (the
numbers the API gives), skills and languages; presence set by admins for anyone and by an
agent token for its own agent only."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect

from tests.api.helpers import eventually, get_json, open_visitor, say
from tests.conftest import AUTH, GatewayFactory
from tests.console.browser import served, signed_in
from tests.console.conftest import ConsoleClient, shot

Client = TestClient  # type: ignore[type-arg]
LAN = {
    "name": "Lan <b>",
    "skills": {"billing": 3, "vietnamese": 5},
    "languages": ["vi", "en"],
    "capacity": {"webchat": 3, "total": 5},
    "presence": "online",
}
MINH = {"name": "Minh", "capacity": {"total": 2}, "presence": "away"}


async def _agents(client: Client) -> None:
    for agent_id, body in (("lan", LAN), ("minh", MINH)):
        resp = await client.put(f"/v1/agents/{agent_id}", json=body, headers=AUTH)
        assert resp.status == 201, await resp.text()


async def _assigned(client: Client, agent_id: str) -> list[Any]:
    page = await get_json(client, f"/v1/conversations?status=assigned&assignee_id={agent_id}")
    return page["items"]  # type: ignore[no-any-return]


def _row(html: str, agent_id: str) -> str:
    start = html.index(f'<tr data-agent="{agent_id}">')
    return html[start : html.index("</tr>", start)]


def _load(row: str, kind: str) -> tuple[int, str]:
    found = re.search(rf'data-load="{kind}" data-value="(\d+)" data-capacity="(\d*)"', row)
    assert found is not None, row
    return int(found.group(1)), found.group(2)


async def _token(client: Client, agent_id: str) -> str:
    resp = await client.post(
        "/v1/tokens",
        json={"name": agent_id, "scopes": ["agent"], "agent_id": agent_id},
        headers=AUTH,
    )
    assert resp.status == 201
    return str((await resp.json())["token"])


async def test_presence_and_load_match_the_api(console: ConsoleClient, client: Client) -> None:
    await _agents(client)
    # the embedded config's demo agent takes no work meanwhile
    resp = await client.put("/v1/agents/demo/presence", json={"status": "offline"}, headers=AUTH)
    assert resp.status == 200
    sockets = []
    for n in range(2):
        ws, _session = await open_visitor(client)
        sockets.append(ws)
        assert (await say(ws, f"xin chào {n}", f"c{n}"))["type"] == "ack"

    async def both() -> list[Any] | None:
        found = await _assigned(client, "lan")
        return found if len(found) == 2 else None

    assigned = await eventually(both)
    await console.signin()
    html = await (await console.get("/console/agents?lang=en")).text()
    lan = _row(html, "lan")
    assert 'data-presence="online"' in lan
    assert _load(lan, "webchat") == (len(assigned), "3") == (2, "3")
    assert _load(lan, "total") == (2, "5")
    assert "Lan &lt;b&gt;" in lan and "Lan <b>" not in lan
    assert "billing 3" in lan and "vietnamese 5" in lan
    assert "vi, en" in lan
    minh = _row(html, "minh")
    assert 'data-presence="away"' in minh
    assert _load(minh, "total") == (len(await _assigned(client, "minh")), "2") == (0, "2")
    assert 'data-presence-form="minh"' in minh and 'data-presence-form="lan"' in lan
    # Vietnamese too
    html = await (await console.get("/console/agents?lang=vi")).text()
    assert "Trực tuyến" in _row(html, "lan") and "Vắng mặt" in _row(html, "minh")
    for ws in sockets:
        await ws.close()


async def test_admins_set_anyones_presence(console: ConsoleClient, client: Client) -> None:
    await _agents(client)
    await console.signin()
    await console.get("/console/agents")
    resp = await console.post("/console/agents/minh/presence", {"status": "online"})
    assert resp.status == 303
    assert (await get_json(client, "/v1/agents/minh"))["presence"] == "online"
    html = await (await console.get("/console/agents/list")).text()
    assert 'data-presence="online"' in _row(html, "minh")
    resp = await console.post("/console/agents/minh/presence", {"status": "asleep"})
    assert resp.status == 400
    assert (await get_json(client, "/v1/agents/minh"))["presence"] == "online"


async def test_an_agent_token_sets_its_own_presence_only(
    console: ConsoleClient, client: Client
) -> None:
    await _agents(client)
    token = await _token(client, "minh")
    assert (await console.signin(token)).status == 303
    html = await (await console.get("/console/agents?lang=en")).text()
    assert "(you)" in _row(html, "minh")
    assert 'data-presence-form="minh"' in html
    assert 'data-presence-form="lan"' not in html  # it sees the others, without a form
    assert 'data-presence="online"' in _row(html, "lan")
    assert 'data-section="agents"' in html and 'data-section="channels"' not in html
    resp = await console.post("/console/agents/minh/presence", {"status": "offline"})
    assert resp.status == 303
    assert (await get_json(client, "/v1/agents/minh"))["presence"] == "offline"
    resp = await console.post("/console/agents/lan/presence", {"status": "offline"})
    assert resp.status == 403
    assert "not_your_agent" in await resp.text()
    assert (await get_json(client, "/v1/agents/lan"))["presence"] == "online"


async def test_in_chromium_agents_live_and_an_agent_token_kept_off_channels(
    make_gateway: GatewayFactory, browser: Browser
) -> None:
    gw = await make_gateway()
    async with served(gw) as base, aiohttp.ClientSession(base, headers=AUTH) as api:
        for agent_id, body in (("lan", LAN), ("minh", MINH)):
            assert (await api.put(f"/v1/agents/{agent_id}", json=body)).status == 201
        assert (await api.put("/v1/agents/demo/presence", json={"status": "offline"})).status == 200
        ws = await api.ws_connect("/webchat/webchat/ws")
        assert (await ws.receive_json(timeout=5))["type"] == "session"
        await ws.send_json({"type": "message", "client_id": "c1", "text": "xin chào"})
        assert (await ws.receive_json(timeout=5))["type"] == "ack"

        page = await signed_in(browser, base)
        await page.goto(f"{base}/console/agents?lang=en")
        lan = page.locator('tr[data-agent="lan"]')
        # the conversation assigned to Lan shows as her load, live
        webchat = lan.locator('[data-load="webchat"]')
        await expect(webchat).to_have_attribute("data-value", "1", timeout=10_000)
        await expect(webchat).to_contain_text("webchat: 1 / 3")
        await expect(lan.locator('[data-load="total"]')).to_contain_text("Total: 1 / 5")
        assigned = (
            await (await api.get("/v1/conversations?status=assigned&assignee_id=lan")).json()
        )["items"]
        assert len(assigned) == 1
        await expect(lan.locator("[data-presence]")).to_have_text("Online")
        await shot(page, "agents")

        # an admin sets Minh online with the form; Lan goes away through the API: both live
        minh = page.locator('tr[data-agent="minh"]')
        await minh.locator("select[name=status]").select_option("online")
        await minh.locator("button[type=submit]").click()
        await expect(minh.locator("[data-presence]")).to_have_text("Online")
        assert (await (await api.get("/v1/agents/minh")).json())["presence"] == "online"
        resp = await api.put("/v1/agents/lan/presence", json={"status": "away"})
        assert resp.status == 200
        await expect(lan.locator("[data-presence]")).to_have_text("Away", timeout=10_000)

        # an agent's token: no channels in the nav, a 403 page there, its own presence only
        resp = await api.post(
            "/v1/tokens", json={"name": "minh", "scopes": ["agent"], "agent_id": "minh"}
        )
        token = (await resp.json())["token"]
        agent = await signed_in(browser, base, token)
        await expect(agent.locator('nav a[data-section="agents"]')).to_be_visible()
        assert await agent.locator('nav a[data-section="channels"]').count() == 0
        answer = await agent.goto(f"{base}/console/channels?lang=en")
        assert answer is not None and answer.status == 403
        await expect(agent.locator("[data-code]")).to_have_attribute(
            "data-code", "insufficient_scope"
        )
        await agent.goto(f"{base}/console/agents?lang=en")
        assert await agent.locator("form[data-presence-form]").count() == 1
        own = agent.locator('tr[data-agent="minh"]')
        await own.locator("select[name=status]").select_option("away")
        await own.locator("button[type=submit]").click()
        await expect(own.locator("[data-presence]")).to_have_text("Away")
        await ws.close()
