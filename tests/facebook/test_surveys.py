"""A survey on Messenger: after resolution its questions go out as quick replies through the
(faked) Send API, the customer's taps and typed numbers come back through the signed
webhook, and none of it reopens the conversation."""

from __future__ import annotations

import time
from typing import Any

from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import GatewayFactory
from tests.facebook.conftest import Fb, GraphFake
from tests.facebook.helpers import CHANNEL, PSID, config, item, load, raw
from tests.providers import Served

SURVEYS = """
[surveys]
enabled = true
delay = 0
nps = true
sweep_interval = 0.1
"""


def tap(mid: str, text: str, payload: str | None = None) -> dict[str, Any]:
    body = load("message_quick_reply")
    message = item(body)
    message["message"].update(mid=mid, text=text)
    if payload is None:
        message["message"].pop("quick_reply", None)
    else:
        message["message"]["quick_reply"] = {"payload": payload}
    message["timestamp"] = int(time.time() * 1000)
    return body


async def quick_replies(graph: GraphFake, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        sent = [b["message"] for _, _, b in graph.messages() if "quick_replies" in b["message"]]
        return sent if len(sent) >= count else None

    found: list[dict[str, Any]] = await eventually(check)
    return found


async def test_a_survey_answered_on_messenger(
    graph: GraphFake, make_gateway: GatewayFactory
) -> None:
    async with Served(make_gateway) as served:
        gw, client = await served.start(config() + SURVEYS)
        fb = Fb(gw, client, graph)
        await fb.deliver(raw("message_text"))
        (conv,) = (await get_json(client, f"/v1/conversations?channel_id={CHANNEL}"))["items"]
        await post_json(client, f"/v1/conversations/{conv['id']}/resolve", None)

        (csat,) = await quick_replies(graph, 1)
        assert [q["payload"] for q in csat["quick_replies"]] == [
            f"survey.csat.{n}" for n in range(1, 6)
        ]
        assert [q["title"] for q in csat["quick_replies"]] == ["1", "2", "3", "4", "5"]
        recipients = {b["recipient"]["id"] for _, _, b in graph.messages()}
        assert recipients == {PSID}

        await fb.deliver(tap("m_survey-tap-1", "5", "survey.csat.5"))
        _, nps = await quick_replies(graph, 2)
        assert [q["payload"] for q in nps["quick_replies"]] == [
            f"survey.nps.{n}" for n in range(0, 11)
        ]
        # NPS typed rather than tapped: the first message after the question.
        await fb.deliver(tap("m_survey-typed-1", "10"))

        survey = await eventually(
            lambda: _answered(client, conv["id"]),
        )
        assert (survey["csat"], survey["nps"], survey["way"]) == (5, 10, "choices")
        after = await get_json(client, f"/v1/conversations/{conv['id']}")
        assert after["status"] == "resolved"
        listed = await get_json(client, f"/v1/conversations?channel_id={CHANNEL}")
        assert len(listed["items"]) == 1  # no conversation opened by the answers
        messages = (await get_json(client, f"/v1/conversations/{conv['id']}/messages"))["items"]
        picks = [m["metadata"]["survey"] for m in messages if "survey" in m["metadata"]]
        assert [(p["question"], p["score"], p["outcome"]) for p in picks] == [
            ("csat", 5, "answered"),
            ("nps", 10, "answered"),
        ]

        # The first question's chip tapped again: kept, marked, nothing changes.
        await fb.deliver(tap("m_survey-tap-2", "1", "survey.csat.1"))
        messages = (await get_json(client, f"/v1/conversations/{conv['id']}/messages"))["items"]
        assert messages[-1]["metadata"]["survey"]["outcome"] == "repeated"
        assert (await _answered(client, conv["id"]))["csat"] == 5
        assert (await get_json(client, f"/v1/conversations/{conv['id']}"))["status"] == "resolved"


async def _answered(client: Any, conv_id: str) -> dict[str, Any] | None:
    survey: dict[str, Any] = await get_json(client, f"/v1/conversations/{conv_id}/survey")
    return survey if survey["nps"] is not None else None
