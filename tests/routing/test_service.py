"""Routing through the real gateway: configuration, store, events and API together."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Gateway
from gateway.domain.dispatch import DISPATCH_CHUNK
from kernel.envelope import InboundMessage, Sender
from kernel.ids import AgentId, ChannelId
from kernel.models import Presence, TextPart
from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import AUTH, GatewayFactory

BASE = """
[[channels]]
id = "webchat"
type = "webchat"
rate_burst = 1000
rate_per_second = 1000
"""


def agent(
    aid: str,
    presence: str = "online",
    skills: str = "{}",
    capacity: str = "{ total = 2 }",
    languages: str = "[]",
) -> str:
    return f"""
[[agents]]
id = "{aid}"
presence = "{presence}"
skills = {skills}
capacity = {capacity}
languages = {languages}
"""


async def customer(gw: Gateway, visitor: str, text: str, n: int = 0) -> str:
    result = await gw.pipeline.ingest(
        InboundMessage(
            channel_id=ChannelId("webchat"),
            external_id=f"{visitor}:{n}",
            sender=Sender(external_id=visitor),
            parts=[TextPart(text=text)],
        )
    )
    return str(result.conversation_id)


async def conv(gw: Gateway, conv_id: str) -> Any:
    c = await gw.store.conversations.get(conv_id)  # type: ignore[arg-type]
    assert c is not None
    return c


async def assigned_to(gw: Gateway, conv_id: str) -> str | None:
    await gw.queue.settle()
    return (await conv(gw, conv_id)).assignee_id  # type: ignore[no-any-return]


async def events(gw: Gateway, type_: str) -> list[Any]:
    return [e for e in await gw.store.events.after(0, 100_000) if e.type == type_]


async def test_rules_set_skills_priority_and_language(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        BASE
        + """
[routing]
[[routing.rules]]
name = "billing"
match = { keywords = ["hoá đơn", "invoice"] }
skills = { billing = 3 }
priority = 7
"""
        + agent("lan", skills="{ billing = 3 }", languages='["vi"]')
        + agent("minh", skills="{ billing = 1 }")
    )
    c1 = await customer(gw, "v1", "Cho em hỏi về hoa don thang 10")
    assert await eventually(lambda: assigned_to(gw, c1)) == "lan"
    c = await conv(gw, c1)
    assert (c.priority, c.skills, c.language) == (7, ["billing"], "vi")
    c2 = await customer(gw, "v2", "Where is my invoice?")
    await gw.queue.settle()
    # English: lan speaks only Vietnamese, minh lacks the level -> waits
    assert (await conv(gw, c2)).status == "queued"
    queued = await events(gw, "conversation.queued")
    assert queued[-1].data["routing"]["skipped_counts"] == {"language": 1, "skill_level": 1}
    log = await gw.store.conversations.decisions(c2)  # type: ignore[arg-type]
    assert log[-1]["skipped"] == {"language": ["lan"], "skill_level": ["minh"]}


async def test_stickiness_brings_a_returning_customer_back(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(BASE + agent("lan") + agent("minh"))
    first = await customer(gw, "v1", "xin chào")
    served_by = await eventually(lambda: assigned_to(gw, first))
    other = "minh" if served_by == "lan" else "lan"
    # load the first agent more than the other, then bring the customer back
    extra = await customer(gw, "v2", "khách khác")
    await gw.queue.settle()
    await gw.assignments.assign(extra, AgentId(served_by), force=True)  # type: ignore[arg-type]
    await gw.assignments.resolve(first)  # type: ignore[arg-type]
    again = await customer(gw, "v1", "lại là mình đây", n=1)
    assert again != first
    assert await eventually(lambda: assigned_to(gw, again)) == served_by
    log = await gw.store.conversations.decisions(again)  # type: ignore[arg-type]
    assert log[-1]["why"].startswith("sticky")
    assert other != served_by


async def test_escalation_steps_relax_requirements_over_time(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        BASE
        + """
[routing]
escalation = [ { after = 0.3, min_level = 2 }, { after = 0.6, any_agent = true } ]
[[routing.rules]]
name = "expert"
match = { keywords = ["khẩn"] }
skills = { expert = 3 }
"""
        + agent("junior", skills="{ expert = 2 }")
    )
    c = await customer(gw, "v1", "việc khẩn")
    await gw.queue.settle()
    assert (await conv(gw, c)).status == "queued"
    assert await eventually(lambda: assigned_to(gw, c), within=5) == "junior"
    log = await gw.store.conversations.decisions(c)  # type: ignore[arg-type]
    assert log[-1]["escalation_step"] == 1
    assert log[-1]["requirements"]["skills"] == {"expert": 2}


async def test_the_reassign_deadline_of_a_new_assignment_is_kept_without_other_dispatches(
    make_gateway: GatewayFactory,
) -> None:
    """The dispatch that assigns is the last one for a while (dispatch_interval is 30 s):
    the deadline of the assignment it just made must still wake the routing up."""
    gw = await make_gateway(
        BASE + "[routing]\nreassign_after = { webchat = 0.3 }\n" + agent("lan") + agent("minh")
    )
    await gw.queue.settle()  # the start-up dispatch is over: nothing else will come
    c = await customer(gw, "v1", "alo")
    first = await eventually(lambda: assigned_to(gw, c))

    async def moved() -> str | None:
        now = await assigned_to(gw, c)
        return now if now not in (None, first) else None

    assert await eventually(moved, within=3) is not None
    breached = await events(gw, "sla.breached")
    assert [e.data["agent_id"] for e in breached][:1] == [first]


async def test_unanswered_customers_are_reassigned_with_an_sla_event(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        BASE
        + "[routing]\nreassign_after = { webchat = 0.4 }\n"
        + agent("lan")
        + agent("minh", capacity="{ total = 1 }")
    )
    c = await customer(gw, "v1", "alo")
    first = await eventually(lambda: assigned_to(gw, c))

    async def moved() -> str | None:
        now = await assigned_to(gw, c)
        return now if now not in (None, first) else None

    second = await eventually(moved, within=5)
    breached = await events(gw, "sla.breached")
    assert breached[0].data["agent_id"] == first
    assert breached[0].data["kind"] == "reassign_after"
    assert breached[0].data["threshold_seconds"] == 0.4
    current = await conv(gw, c)
    assert current.assignee_id == second
    # an agent reply stops the clock
    await gw.outbox.create(
        c,
        __import__("kernel.models", fromlist=["Author"]).Author(type="agent", id=second),
        [TextPart(text="dạ")],
    )  # type: ignore[arg-type]
    await asyncio.sleep(0.6)
    assert await assigned_to(gw, c) == second


async def test_going_offline_requeues_and_away_keeps(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(BASE + agent("lan") + agent("minh", presence="offline"))
    c = await customer(gw, "v1", "xin chào")
    assert await eventually(lambda: assigned_to(gw, c)) == "lan"
    await gw.assignments.set_presence(AgentId("lan"), Presence.AWAY)
    gw.queue.kick()
    assert await assigned_to(gw, c) == "lan"  # away keeps by default
    await gw.assignments.set_presence(AgentId("minh"), Presence.ONLINE)
    await gw.assignments.set_presence(AgentId("lan"), Presence.OFFLINE)
    gw.queue.kick()
    assert await eventually(lambda: assigned_to(gw, c)) == "minh"


async def test_queue_places_estimates_and_customer_notice(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        BASE
        + """
[routing]
average_handle_time = "5m"
queue_message = { enabled = true, min_wait = 0 }
"""
        + agent("lan", capacity="{ total = 1 }")
    )
    async with TestClient(TestServer(gw.web_app())) as client:
        ws = await client.ws_connect("/webchat/webchat/ws")
        await ws.receive_json()
        convs = [await customer(gw, f"v{i}", "xin chào") for i in range(3)]
        await gw.queue.settle()
        queue = await get_json(client, "/v1/queue")
        assert [i["position"] for i in queue["items"]] == [1, 2]
        assert [i["conversation"]["id"] for i in queue["items"]] == convs[1:]
        assert queue["items"][0]["estimated_wait_seconds"] == 300.0
        assert queue["items"][1]["estimated_wait_seconds"] == 600.0
        log = await get_json(client, f"/v1/conversations/{convs[2]}/routing")
        assert log["queue"]["position"] == 2
        queued = await events(gw, "conversation.queued")
        assert [e.data["position"] for e in queued] == [1, 2]
        # the waiting customers were told, in their language
        msgs = await get_json(client, f"/v1/conversations/{convs[2]}/messages")
        notice = [m for m in msgs["items"] if m["author"]["type"] == "system"]
        assert "vị trí số 2" in notice[0]["parts"][0]["text"]
        assert "10 phút" in notice[0]["parts"][0]["text"]


async def test_priority_beats_waiting_time(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        BASE
        + '[routing]\n[[routing.rules]]\nname = "vip"\n'
        + "match = { contact = { vip = true } }\npriority = 9\n"
        + agent("lan", presence="offline", capacity="{ total = 1 }")
    )
    early = await customer(gw, "v1", "đến trước")
    late = await customer(gw, "v2", "đến sau")
    contact = (await conv(gw, late)).contact_id
    await gw.contacts.update(contact, attributes={"vip": True})
    # rules apply when a conversation starts: a VIP's next conversation is prioritised
    await gw.assignments.resolve(late)  # type: ignore[arg-type]
    vip = await customer(gw, "v2", "VIP đây", n=1)
    await gw.assignments.set_presence(AgentId("lan"), Presence.ONLINE)
    gw.queue.kick()
    assert await eventually(lambda: assigned_to(gw, vip)) == "lan"
    assert (await conv(gw, early)).status == "queued"


async def test_a_long_queue_is_served_in_short_transactions_in_order(
    make_gateway: GatewayFactory,
) -> None:
    total = DISPATCH_CHUNK * 2 + 17
    gw = await make_gateway(
        BASE
        + agent("lan", presence="offline", capacity=f"{{ total = {total} }}")
        + agent("minh", presence="offline", capacity="{ total = 10 }")
    )
    convs = [await customer(gw, f"v{i}", "xin chào") for i in range(total + 5)]
    await gw.queue.settle()
    # one dispatch assigns at most a chunk, the first in queue order, and says there is more
    await gw.assignments.set_presence(AgentId("lan"), Presence.ONLINE)
    first = await gw.assignments.dispatch()
    chosen = [d.conversation_id for d in first.decisions if d.agent_id is not None]
    assert chosen == convs[:DISPATCH_CHUNK]
    assert first.more
    # the service runs again until the queue is served or capacity is used up
    await gw.assignments.set_presence(AgentId("minh"), Presence.ONLINE)
    gw.queue.kick()
    await gw.queue.settle()
    owners = [(await conv(gw, c)).assignee_id for c in convs]
    assert None not in owners
    assert owners.count("lan") <= total and 0 < owners.count("minh") <= 10
    assigned = await events(gw, "conversation.assigned")
    assert len(assigned) == len(convs)
    assert len({e.data["conversation"]["id"] for e in assigned}) == len(convs)
    # nobody left: the last dispatch did not ask for another
    last = await gw.assignments.dispatch()
    assert not last.more and last.decisions == []


async def test_transfer_to_skills_and_manual_rules_over_http(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(BASE + agent("lan") + agent("minh", skills="{ tech = 2 }"))
    async with TestClient(TestServer(gw.web_app())) as client:
        c = await customer(gw, "v1", "máy lỗi")
        first = await eventually(lambda: assigned_to(gw, c))
        moved = await post_json(client, f"/v1/conversations/{c}/transfer", {"skills": {"tech": 2}})
        assert moved["status"] == "queued" and moved["skills"] == ["tech"]
        assert await eventually(lambda: assigned_to(gw, c)) == "minh"
        assert first == "lan"  # minh had more skills but equal load: stable order picks lan
        bad = await post_json(
            client, f"/v1/conversations/{c}/transfer", {"skills": {"tech": 11}}, 400
        )
        assert bad["error"]["code"] == "validation_error"
        patched = await client.patch(
            f"/v1/contacts/{(await conv(gw, c)).contact_id}",
            json={"attributes": {"tier": "gold", "vip": True}},
            headers=AUTH,
        )
        assert (await patched.json())["attributes"] == {"tier": "gold", "vip": True}
        removed = await client.patch(
            f"/v1/contacts/{(await conv(gw, c)).contact_id}",
            json={"attributes": {"vip": None}, "phone": "0912 345 678"},
            headers=AUTH,
        )
        body = await removed.json()
        assert body["attributes"] == {"tier": "gold"}
        assert body["phone"] == "+84912345678"
        wrong = await client.patch(
            f"/v1/contacts/{(await conv(gw, c)).contact_id}", json={"phone": "abc"}, headers=AUTH
        )
        assert wrong.status == 422


async def test_racing_traffic_keeps_every_invariant(make_gateway: GatewayFactory) -> None:
    """Hundreds of conversations, resolves, presence changes and manual assignments race
    through the real service and store."""
    from gateway.domain.state import load_index
    from gateway.store.records import ConversationFilter
    from kernel.errors import DomainError

    agents = "".join(agent(f"a{i}", capacity="{ webchat = 2, total = 3 }") for i in range(8))
    gw = await make_gateway(
        BASE + '[routing]\non_offline = "requeue"\non_away = "requeue"\n' + agents
    )
    convs: list[str] = []
    violations: list[str] = []

    async def loads_within_capacity() -> None:
        page = await gw.store.conversations.page(ConversationFilter(status="assigned"), None, 200)
        count: dict[str, int] = {}
        for c in page.items:
            count[c.assignee_id] = count.get(c.assignee_id, 0) + 1
        violations.extend(f"{a} has {n}" for a, n in count.items() if n > 2)  # webchat cap

    async def arrivals() -> None:
        for i in range(300):
            convs.append(await customer(gw, f"v{i}", f"khách {i}"))
            if i % 7 == 0:
                await asyncio.sleep(0)

    async def churn(seed: int) -> None:
        local = random.Random(seed)
        for step in range(250):
            await asyncio.sleep(0)
            roll = local.random()
            try:
                if roll < 0.4 and convs:
                    await gw.assignments.resolve(local.choice(convs))  # type: ignore[arg-type]
                elif roll < 0.7:
                    await gw.assignments.set_presence(
                        AgentId(f"a{local.randrange(8)}"), local.choice(list(Presence))
                    )
                elif convs:
                    await gw.assignments.assign(
                        local.choice(convs), AgentId(f"a{local.randrange(8)}")
                    )  # type: ignore[arg-type]
            except DomainError:
                pass  # at capacity, offline, already resolved: refused, as it must be
            gw.queue.kick()
            if step % 25 == 0:
                await loads_within_capacity()

    await asyncio.gather(arrivals(), churn(1), churn(2))
    for i in range(8):  # everyone back, so the queue can drain as far as capacity allows
        await gw.assignments.set_presence(AgentId(f"a{i}"), Presence.ONLINE)
    gw.queue.kick()
    await gw.queue.settle()
    await loads_within_capacity()
    assert violations == []

    agents_now = {a.id: a for a in (await gw.store.agents.page(None, 100)).items}
    assigned = await gw.store.conversations.page(ConversationFilter(status="assigned"), None, 200)
    queued = await gw.store.conversations.page(ConversationFilter(status="queued"), None, 200)
    load: dict[str, int] = {}
    for c in assigned.items:
        load[c.assignee_id] = load.get(c.assignee_id, 0) + 1
        assert agents_now[c.assignee_id].presence == "online"
    # the queue only waits when nobody has room
    if queued.items:
        assert all(n == 2 for n in load.values()) and len(load) == 8
    # the event log tells one consistent story: never assigned while already assigned
    log = await gw.store.events.after(0, 100_000)
    kinds = [e.type for e in log]
    assert kinds.count("conversation.assigned") > 60  # 16 slots, freed again and again
    assert kinds.count("conversation.resolved") > 50
    assert kinds.count("agent.presence_changed") > 50
    assert any(e.type == "conversation.queued" and e.data.get("reason") for e in log)
    assert any(e.type == "conversation.transferred" for e in log)
    state: dict[str, str] = {}
    for e in log:
        conversation = (
            e.data.get("conversation") if e.type.startswith(("conversation.", "sla.")) else None
        )
        if conversation is None:
            continue
        cid = conversation["id"]
        if e.type == "conversation.assigned":
            assert state.get(cid) in ("queued", None), (cid, state.get(cid))
        state[cid] = conversation["status"]
    final = {c.id: "assigned" for c in assigned.items} | {c.id: "queued" for c in queued.items}
    for cid, status in final.items():
        assert state[cid] == status
    # and the in-memory index agrees with the database
    fresh = await gw.store.transact(lambda tx: load_index(tx, {"webchat"}))
    live = await gw.store.transact(gw.assignments.state.index)
    assert {a: s.load for a, s in fresh.agents.items()} == {
        a: s.load for a, s in live.agents.items()
    }
    live.check()
