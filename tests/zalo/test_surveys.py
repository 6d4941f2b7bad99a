"""A survey on Zalo: CSAT as buttons (a tap comes back as the customer's own text, the
button's title), NPS (more answers than Zalo has buttons) asked for as a number; the
answers never open or reopen a conversation."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import eventually, get_json, post_json
from tests.conftest import GatewayFactory
from tests.providers import Served
from tests.zalo.conftest import ZaloFake, Zl
from tests.zalo.helpers import CHANNEL, USER, config, load

SURVEYS = """
[surveys]
enabled = true
delay = 0
nps = true
sweep_interval = 0.1
"""


def text(msg_id: str, words: str) -> dict[str, Any]:
    body = load("user_send_text")
    body["message"] = {"msg_id": msg_id, "text": words}
    return body


async def sent(zalo: ZaloFake, count: int) -> list[dict[str, Any]]:
    async def check() -> list[dict[str, Any]] | None:
        found = zalo.bodies()
        return found if len(found) >= count else None

    found: list[dict[str, Any]] = await eventually(check)
    return found


async def test_a_survey_answered_on_zalo(zalo: ZaloFake, make_gateway: GatewayFactory) -> None:
    async with Served(make_gateway) as served:
        gw, client = await served.start(config() + SURVEYS)
        zl = Zl(gw, client, zalo)
        await zl.deliver(load("user_send_text"))
        (conv,) = (await get_json(client, f"/v1/conversations?channel_id={CHANNEL}"))["items"]
        await post_json(client, f"/v1/conversations/{conv['id']}/resolve", None)

        (csat,) = await sent(zalo, 1)
        assert csat["recipient"] == {"user_id": USER}
        buttons = csat["message"]["attachment"]["payload"]["buttons"]
        assert [(b["title"], b["type"], b["payload"]) for b in buttons] == [
            (str(n), "oa.query.show", str(n)) for n in range(1, 6)
        ]
        # The tap: Zalo sends the button's payload as the customer's text.
        await zl.deliver(text("zl-survey-0001", "4"))
        _, nps = await sent(zalo, 2)
        assert "attachment" not in nps["message"]
        assert "0" in nps["message"]["text"] and "10" in nps["message"]["text"]
        await zl.deliver(text("zl-survey-0002", "7"))

        async def answered() -> dict[str, Any] | None:
            survey: dict[str, Any] = await get_json(
                client, f"/v1/conversations/{conv['id']}/survey"
            )
            return survey if survey["nps"] is not None else None

        survey = await eventually(answered)
        assert (survey["csat"], survey["nps"], survey["way"]) == (4, 7, "choices")
        thanks = (await sent(zalo, 3))[2]
        assert "attachment" not in thanks["message"]  # (no public_url: no comment link)
        assert (await get_json(client, f"/v1/conversations/{conv['id']}"))["status"] == "resolved"

        # After the survey, a number is an ordinary message: a new conversation.
        await zl.deliver(text("zl-survey-0003", "5"))
        listed = (await get_json(client, f"/v1/conversations?channel_id={CHANNEL}"))["items"]
        assert len(listed) == 2
        assert (await get_json(client, f"/v1/conversations/{conv['id']}/survey"))["csat"] == 4
