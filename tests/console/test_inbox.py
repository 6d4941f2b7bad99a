"""The inbox: open conversations with their contact, channel, wait and SLA; filters by
status, channel and "mine"; an agent's own presence switch; names shown as text."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from tests.api.helpers import get_json, post_json
from tests.conftest import ADMIN, AUTH
from tests.console.conftest import ConsoleClient
from tests.console.test_conversation import XSS, page_of, visitor_conversation

Client = TestClient  # type: ignore[type-arg]


async def test_no_inbox_without_a_session(client: Client) -> None:
    for path in ("/console/inbox", "/console/inbox/list", "/console/inbox?status=resolved"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/console/signin")
    resp = await client.post(
        "/console/agents/lan/presence", data={"status": "online"}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/console/signin")


async def test_a_visitor_shows_with_the_contacts_name_as_text(console: ConsoleClient) -> None:
    client = console.client
    await console.signin()
    empty = await page_of(console, "/console/inbox/list")
    assert "data-conversation=" not in empty
    _ws, conv = await visitor_conversation(client, "Cho hỏi giá", f"Anh Bảo {XSS}")
    fragment = await page_of(console, "/console/inbox/list")
    assert f'data-conversation="{conv["id"]}"' in fragment
    assert XSS not in fragment
    assert "Anh Bảo &lt;script&gt;alert(1)&lt;/script&gt;" in fragment
    row = fragment.split(f'data-conversation="{conv["id"]}"', 1)[1].split("</tr>", 1)[0]
    assert "<td>webchat</td>" in row
    assert '<td data-assignee="demo">Demo Agent</td>' in row
    assert 'data-status="assigned">Đã giao<' in row
    page = await page_of(console, "/console/inbox")
    # live: the lists are fetched again on conversation and message events
    assert 'sse-connect="/console/events"' in page
    assert 'hx-trigger="sse:conversation, sse:message, sse:sla" data-throttle="1000"' in page
    assert ADMIN not in page


async def test_queued_conversations_show_their_wait(make_gateway) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestServer

    gw = await make_gateway('[[channels]]\nid = "webchat"\ntype = "webchat"\n')
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        _ws, conv = await visitor_conversation(client, "Có ai không?")
        assert conv["status"] == "queued"  # nobody is online
        await console.signin()
        page = await page_of(console, "/console/inbox?lang=en")
        row = page.split(f'data-conversation="{conv["id"]}"', 1)[1].split("</tr>", 1)[0]
        assert "place 1" in row
        assert " s " in row or " min" in row
        assert 'data-status="queued">Queued<' in row


async def test_filters_by_status_and_channel(console: ConsoleClient) -> None:
    client = console.client
    _ws, conv = await visitor_conversation(client)
    await post_json(client, f"/v1/conversations/{conv['id']}/resolve", {})
    await console.signin()
    page = await page_of(console, "/console/inbox")
    assert f'data-conversation="{conv["id"]}"' not in page
    page = await page_of(console, "/console/inbox?status=resolved")
    assert f'data-conversation="{conv["id"]}"' in page
    assert 'data-list="resolved"' in page
    assert 'data-list="queued"' not in page
    fragment = await page_of(console, "/console/inbox/list?status=resolved&channel_id=webchat")
    assert f'data-conversation="{conv["id"]}"' in fragment
    fragment = await page_of(console, "/console/inbox/list?status=resolved&channel_id=other")
    assert f'data-conversation="{conv["id"]}"' not in fragment
    # the live list keeps the filters
    assert 'hx-get="/console/inbox/list?status=resolved"' in page
    # a status the API does not know: its error, said plainly
    resp = await console.get("/console/inbox?status=lost")
    assert resp.status == 400
    assert "validation_error" in await resp.text()


async def test_an_agent_sees_its_own_and_sets_its_presence(console: ConsoleClient) -> None:
    client = console.client
    resp = await client.put(
        "/v1/agents/lan", json={"name": "Lan", "presence": "away"}, headers=AUTH
    )
    assert resp.status in (200, 201)
    _ws, conv = await visitor_conversation(client)  # goes to the demo agent
    token = await post_json(
        client, "/v1/tokens", {"name": "lan", "scopes": ["agent"], "agent_id": "lan"}, status=201
    )
    await console.signin(token["token"])
    page = await page_of(console, "/console/inbox")
    assert 'data-form="presence"' in page
    assert 'data-presence="away"' in page
    assert 'name="mine"' in page
    assert f'data-conversation="{conv["id"]}"' in page
    mine = await page_of(console, "/console/inbox?mine=1")
    assert f'data-conversation="{conv["id"]}"' not in mine
    resp = await console.post("/console/agents/lan/presence", {"status": "online", "back": "inbox"})
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == "/console/inbox"
    agent = await get_json(client, "/v1/agents/lan")
    assert agent["presence"] == "online"
    resp = await console.post("/console/agents/lan/presence", {"status": "asleep"})
    assert resp.status == 400
    assert (await get_json(client, "/v1/agents/lan"))["presence"] == "online"
    # the admin token acts for no agent: no switch, no "mine"
    admin = ConsoleClient(client)
    admin.client.session.cookie_jar.clear()
    await admin.signin()
    page = await page_of(admin, "/console/inbox")
    assert 'data-form="presence"' not in page
    assert 'name="mine"' not in page


SLA = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
name = "Lan"
languages = ["vi", "en"]
capacity = { total = 5 }
presence = "online"

[[sla_policies]]
id = "chat"
channels = ["webchat"]
first_response = "30m"
resolution = "8h"
"""


async def test_sla_dues_show_in_the_inbox_and_on_the_page(make_gateway) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestServer

    gw = await make_gateway(SLA)
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        _ws, conv = await visitor_conversation(client)
        got = await get_json(client, f"/v1/conversations/{conv['id']}")
        due = got["sla"]["first_response_due"]
        assert due
        await console.signin()
        page = await page_of(console, "/console/inbox?lang=en")
        row = page.split(f'data-conversation="{conv["id"]}"', 1)[1].split("</tr>", 1)[0]
        shown = due[:10] + " " + due[11:16] + " UTC"
        assert f"due {shown}" in row
        assert 'data-sla="breached"' not in row
        text = await page_of(console, f"/console/conversations/{conv['id']}?lang=en")
        sla = text.split('data-field="sla"', 1)[1].split("</dd>", 1)[0]
        assert "chat" in sla
        assert f'First response due: <time datetime="{due}">{shown}</time>' in sla
