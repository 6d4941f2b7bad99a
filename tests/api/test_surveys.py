"""Surveys by link (webchat here) through a real gateway: sent after resolution, answered
on the survey page (plain HTML, no JavaScript), late and repeated answers, signed links,
and the survey and FCR figures of /v1/stats checked against what was stored."""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api.surveys import read_form
from gateway.app import Gateway
from gateway.domain import surveys
from kernel.errors import Invalid
from kernel.events import Event
from kernel.secrets import Keyring
from tests.api.helpers import eventually, get_json, post_json
from tests.api.test_stats import by_channel, customer
from tests.conftest import GatewayFactory

Client = TestClient  # type: ignore[type-arg]
PUBLIC = "https://help.shop.test"

CONFIG = """
[[channels]]
id = "webchat"
type = "webchat"
rate_burst = 1000
rate_per_second = 1000

[[channels]]
id = "shop"
type = "webchat"

[[agents]]
id = "lan"
presence = "offline"

[[agents]]
id = "minh"
presence = "offline"

[surveys]
enabled = true
delay = 0
nps = true
ces = true
sweep_interval = 0.1
expire_after = "{expire}"

[stats]
fcr_window = "{window}"
"""


async def start(
    make_gateway: GatewayFactory, *, expire: str = "7d", window: str = "72h"
) -> tuple[Gateway, Client]:
    gw = await make_gateway(
        CONFIG.format(expire=expire, window=window), **{"server.public_url": PUBLIC}
    )
    client = TestClient(TestServer(gw.web_app()))
    await client.start_server()
    return gw, client


@pytest.fixture
async def started(make_gateway: GatewayFactory) -> AsyncIterator[tuple[Gateway, Client]]:
    gw, client = await start(make_gateway)
    yield gw, client
    await client.close()


async def served_and_resolved(
    gw: Gateway, client: Client, channel: str, visitor: str, agent: str | None = "lan"
) -> str:
    """A customer writes, an agent takes it and answers (unless None), the conversation is
    resolved."""
    conv_id = await customer(gw, channel, visitor, "Xin chào, tôi cần hỗ trợ đơn hàng")
    if agent is not None:
        await post_json(
            client, f"/v1/conversations/{conv_id}/assign", {"agent_id": agent, "force": True}
        )
        await post_json(
            client,
            f"/v1/conversations/{conv_id}/messages",
            {"text": "Dạ, em đã xử lý xong ạ", "agent_id": agent},
            202,
        )
    await post_json(client, f"/v1/conversations/{conv_id}/resolve", None)
    return conv_id


async def sent_survey(client: Client, conv_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        resp = await client.get(
            f"/v1/conversations/{conv_id}/survey",
            headers={"Authorization": "Bearer test-admin-token-0123456789abcdefghij"},
        )
        if resp.status != 200:
            return None
        found: dict[str, Any] = await resp.json()
        return found if found["status"] != "scheduled" else None

    found: dict[str, Any] = await eventually(check)
    return found


async def survey_link(client: Client, conv_id: str) -> str:
    """The path of the survey link the customer was sent."""
    await sent_survey(client, conv_id)
    messages = await get_json(client, f"/v1/conversations/{conv_id}/messages")
    links = [
        p["url"]
        for m in messages["items"]
        if m["author"]["type"] == "system"
        for p in m["parts"]
        if p["type"] == "link"
    ]
    assert len(links) == 1, messages
    url = urlsplit(links[0])
    assert f"{url.scheme}://{url.netloc}" == PUBLIC
    return url.path


def radios(page: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="radio" name="(\w+)" value="(\d+)"', page):
        found.setdefault(name, []).append(value)
    return found


async def answered_events(gw: Gateway) -> list[Event]:
    return await gw.store.events.after(0, 1000, types=["survey.answered"])


async def test_a_survey_link_is_answered_on_the_page_once(
    started: tuple[Gateway, Client],
) -> None:
    gw, client = started
    conv_id = await served_and_resolved(gw, client, "webchat", "v-page")
    survey = await sent_survey(client, conv_id)
    assert survey["way"] == "link"
    assert survey["status"] == "sent"
    assert survey["agent_id"] is None or survey["agent_id"] == "lan"
    assert survey["questions"] == ["csat", "nps", "ces"]
    path = await survey_link(client, conv_id)

    page = await client.get(path)
    body = await page.text()
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in page.headers["Content-Security-Policy"]  # no script at all
    assert "<script" not in body
    assert page.headers["Referrer-Policy"] == "no-referrer"
    conv = await get_json(client, f"/v1/conversations/{conv_id}")
    lang = "vi" if (conv["language"] or "").startswith("vi") else "en"
    assert f'<html lang="{lang}">' in body
    assert radios(body) == {
        "csat": [str(n) for n in range(1, 6)],
        "nps": [str(n) for n in range(0, 11)],
        "ces": [str(n) for n in range(1, 8)],
    }
    assert 'name="comment"' in body

    # Incomplete: nothing is stored, the form comes back with a note.
    resp = await client.post(path, data={"csat": "4"})
    assert resp.status == 400
    assert 'name="nps"' in await resp.text()
    assert (await sent_survey(client, conv_id))["csat"] is None

    comment = "<script>alert('x')</script> Nhân viên rất nhiệt tình"
    resp = await client.post(path, data={"csat": "4", "nps": "9", "ces": "6", "comment": comment})
    assert resp.status == 200, await resp.text()
    stored = await sent_survey(client, conv_id)
    assert (stored["status"], stored["csat"], stored["nps"], stored["ces"]) == (
        "answered",
        4,
        9,
        6,
    )
    assert stored["comment"] == comment
    receipt = await resp.text()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in receipt
    assert "<script" not in receipt
    (event,) = await answered_events(gw)
    assert event.conversation_id == conv_id
    assert event.data["survey"]["csat"] == 4
    assert event.data["survey"]["comment"] == comment
    assert (event.data["question"], event.data["via"]) == ("csat", "link")

    # The answer did not reopen the conversation.
    assert (await get_json(client, f"/v1/conversations/{conv_id}"))["status"] == "resolved"

    # Repeated: the first answer stands, nothing new is announced.
    again = await client.post(path, data={"csat": "1", "nps": "0", "ces": "1", "comment": "x"})
    assert again.status == 409
    assert (await sent_survey(client, conv_id))["csat"] == 4
    assert len(await answered_events(gw)) == 1
    shown = await client.get(path)
    assert shown.status == 200
    assert 'type="radio"' not in await shown.text()


async def test_the_comment_is_shown_as_text(started: tuple[Gateway, Client]) -> None:
    gw, client = started
    conv_id = await served_and_resolved(gw, client, "webchat", "v-comment")
    path = await survey_link(client, conv_id)
    # Scores first, through the page, without a comment; the page then shows them.
    resp = await client.post(path, data={"csat": "5", "nps": "10", "ces": "7"})
    assert resp.status == 200
    page = await (await client.get(path)).text()
    assert "<strong>5</strong>" in page and 'type="radio"' not in page
    # A comment later, alone: kept once, and shown escaped.
    resp = await client.post(path, data={"comment": "<b>Rất tốt</b> & nhanh"})
    assert resp.status == 200
    stored = await sent_survey(client, conv_id)
    assert stored["comment"] == "<b>Rất tốt</b> & nhanh"
    # The page now has nothing left to ask: it shows the answers, the comment as text.
    page = await (await client.get(path)).text()
    assert "&lt;b&gt;Rất tốt&lt;/b&gt; &amp; nhanh" in page
    assert "<b>" not in page and 'type="radio"' not in page
    events = await answered_events(gw)
    assert [e.data["question"] for e in events] == ["csat", None]


async def test_links_that_are_not_ours_or_out_of_range(started: tuple[Gateway, Client]) -> None:
    gw, client = started
    conv_id = await served_and_resolved(gw, client, "webchat", "v-bad")
    path = await survey_link(client, conv_id)
    token = path.rsplit("/", 1)[1]
    survey_id, expires, mac = token.split(".")
    for forged in (
        f"{survey_id}.{int(expires) + 86400}.{mac}",  # a longer life
        f"sv_someoneelse.{expires}.{mac}",
        f"{survey_id}.{expires}.{mac[:-2]}",
        "nothing",
        "a.b.c.d",
    ):
        resp = await client.get(f"/surveys/{forged}")
        assert resp.status == 404, forged
        post = await client.post(f"/surveys/{forged}", data={"csat": "5", "nps": "5", "ces": "5"})
        assert post.status == 404, forged
    for bad in ({"csat": "6", "nps": "5", "ces": "5"}, {"csat": "٣", "nps": "5", "ces": "5"}):
        resp = await client.post(path, data=bad)
        assert resp.status == 400
    resp = await client.post(
        path, data={"csat": "3", "nps": "5", "ces": "5", "comment": "y" * 2001}
    )
    assert resp.status == 400
    assert (await sent_survey(client, conv_id))["csat"] is None
    # Not a form at all: a clear answer, nothing stored.
    resp = await client.post(path, data=b"\xff\xfe", headers={"Content-Type": "text/plain"})
    assert resp.status == 400
    assert (await sent_survey(client, conv_id))["csat"] is None


async def test_a_late_answer_is_refused(make_gateway: GatewayFactory) -> None:
    gw, client = await start(make_gateway, expire="1s")
    try:
        conv_id = await served_and_resolved(gw, client, "webchat", "v-late")
        path = await survey_link(client, conv_id)
        survey = await sent_survey(client, conv_id)
        await asyncio.sleep(1.2)
        resp = await client.post(path, data={"csat": "5", "nps": "9", "ces": "7"})
        assert resp.status == 410
        assert (await client.get(path)).status == 410
        stored = await sent_survey(client, conv_id)
        assert stored == survey
        assert await answered_events(gw) == []
    finally:
        await client.close()


async def test_a_reopened_conversation_gets_no_survey_until_resolved_again(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        CONFIG.format(expire="7d", window="72h").replace("delay = 0", 'delay = "1h"'),
        **{"server.public_url": PUBLIC},
    )
    async with TestClient(TestServer(gw.web_app())) as client:
        conv_id = await served_and_resolved(gw, client, "webchat", "v-reopen")
        first = await get_json(client, f"/v1/conversations/{conv_id}/survey")
        assert first["status"] == "scheduled"
        await post_json(client, f"/v1/conversations/{conv_id}/reopen", None)
        withdrawn = await get_json(client, f"/v1/conversations/{conv_id}/survey")
        assert (withdrawn["status"], withdrawn["reason"]) == ("skipped", "reopened")
        await post_json(client, f"/v1/conversations/{conv_id}/resolve", None)
        again = await get_json(client, f"/v1/conversations/{conv_id}/survey")
        assert again["id"] == first["id"] and again["status"] == "scheduled"


async def test_without_a_public_url_the_link_is_skipped_with_the_reason(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(CONFIG.format(expire="7d", window="72h"))
    async with TestClient(TestServer(gw.web_app())) as client:
        conv_id = await served_and_resolved(gw, client, "webchat", "v-nourl")
        survey = await sent_survey(client, conv_id)
        assert (survey["status"], survey["reason"], survey["way"]) == (
            "skipped",
            "no_public_url",
            None,
        )
        messages = await get_json(client, f"/v1/conversations/{conv_id}/messages")
        assert all(m["author"]["type"] != "system" for m in messages["items"])


def test_tokens_are_signed_by_any_key_of_the_ring() -> None:
    old, new = Keyring([b"o" * 32]), Keyring([b"n" * 32, b"o" * 32])
    token = surveys.sign(old, "sv_1", 1_900_000_000_000_000)
    assert surveys.verify(new, token) == ("sv_1", 1_900_000_000_000_000)
    with pytest.raises(Exception, match="not a survey link"):
        surveys.verify(Keyring([b"n" * 32]), token)


async def test_stats_follow_the_stored_answers(make_gateway: GatewayFactory) -> None:
    gw, client = await start(make_gateway, window="3s")
    try:
        answers = [
            ("webchat", "lan", {"csat": "5", "nps": "10", "ces": "7"}),
            ("webchat", "lan", {"csat": "3", "nps": "6", "ces": "4"}),
            ("webchat", "minh", {"csat": "4", "nps": "8", "ces": "2"}),
            ("shop", "minh", {"csat": "1", "nps": "0", "ces": "1"}),
            ("shop", "lan", None),  # sent, never answered
        ]
        conv_ids = []
        for n, (channel, agent, given) in enumerate(answers):
            conv_id = await served_and_resolved(gw, client, channel, f"v-stats-{n}", agent)
            conv_ids.append(conv_id)
            path = await survey_link(client, conv_id)
            if given is not None:
                assert (await client.post(path, data=given)).status == 200
        stored = [await sent_survey(client, c) for c in conv_ids]
        stats = await get_json(client, "/v1/stats")
        channels = by_channel(stats)
        for channel in ("webchat", "shop"):
            mine = [s for s in stored if s["channel_id"] == channel]
            figures = channels[channel]["surveys"]
            csat = [s["csat"] for s in mine if s["csat"] is not None]
            nps = [s["nps"] for s in mine if s["nps"] is not None]
            ces = [s["ces"] for s in mine if s["ces"] is not None]
            assert figures["sent"] == len(mine)
            assert figures["answered"] == len(csat)
            assert figures["response_rate"] == pytest.approx(len(csat) / len(mine), abs=1e-4)
            assert figures["csat"]["answers"] == len(csat)
            assert figures["csat"]["satisfied_rate"] == pytest.approx(
                sum(1 for v in csat if v >= 4) / len(csat), abs=1e-4
            )
            assert figures["csat"]["average"] == pytest.approx(sum(csat) / len(csat), abs=1e-4)
            promoters = sum(1 for v in nps if v >= 9)
            detractors = sum(1 for v in nps if v <= 6)
            assert figures["nps"]["score"] == pytest.approx(
                (promoters - detractors) * 100 / len(nps), abs=0.01
            )
            assert figures["ces"]["average"] == pytest.approx(sum(ces) / len(ces), abs=1e-4)
        total = stats["total"]["surveys"]
        assert total["sent"] == 5 and total["answered"] == 4
        # Per agent: the agent each survey names (the one assigned at resolution).
        assert [s["agent_id"] for s in stored] == [a for _, a, _ in answers]
        by_agent = {a["agent_id"]: a for a in stats["agents"]}
        assert set(by_agent) == {"lan", "minh"}
        for agent_id, figures in by_agent.items():
            mine = [s for s in stored if s["agent_id"] == agent_id]
            csat = [s["csat"] for s in mine if s["csat"] is not None]
            assert figures["sent"] == len(mine)
            assert figures["answered"] == len(csat)
            assert figures["csat"]["average"] == pytest.approx(sum(csat) / len(csat), abs=1e-4)
        # lan: 5 and 3 of 3 sent; minh: 4 and 1 of 2
        assert by_agent["lan"]["response_rate"] == pytest.approx(2 / 3, abs=1e-4)
        assert by_agent["minh"]["csat"]["satisfied_rate"] == 0.5
    finally:
        await client.close()


async def test_fcr_across_channels_and_bot_contained(make_gateway: GatewayFactory) -> None:
    gw, client = await start(make_gateway, window="2s")
    try:
        # a: served on webchat, then the same person (merged) writes on "shop": not FCR.
        a = await served_and_resolved(gw, client, "webchat", "v-fcr-a")
        # b: served and never back.
        await served_and_resolved(gw, client, "webchat", "v-fcr-b")
        # c: resolved with no person ever in it (contained).
        await served_and_resolved(gw, client, "webchat", "v-fcr-c", agent=None)
        a_conv = await get_json(client, f"/v1/conversations/{a}")
        again = await customer(gw, "shop", "v-fcr-a-elsewhere", "Tôi lại cần hỏi")
        again_conv = await get_json(client, f"/v1/conversations/{again}")
        await post_json(
            client,
            f"/v1/contacts/{a_conv['contact_id']}/merge",
            {"other_id": again_conv["contact_id"]},
        )
        await post_json(client, f"/v1/conversations/{again}/resolve", None)

        # Within the window: b and c wait for it to end; a came back already.
        stats = await get_json(client, "/v1/stats?channel_id=webchat")
        web = by_channel(stats)["webchat"]
        assert web["fcr"]["resolved"] == 3 and web["fcr"]["first_contact"] == 3
        assert web["fcr_across_channels"] == {
            "resolved": 2,
            "first_contact": 0,
            "came_back": 1,
            "awaiting": 1,
            "rate": 0.0,
        }
        assert web["bot_contained"]["resolved"] == 1
        await asyncio.sleep(2.2)
        web = by_channel(await get_json(client, "/v1/stats?channel_id=webchat"))["webchat"]
        assert web["fcr_across_channels"] == {
            "resolved": 2,
            "first_contact": 1,
            "came_back": 1,
            "awaiting": 0,
            "rate": 0.5,
        }
        assert web["bot_contained"] == {
            "resolved": 1,
            "first_contact": 1,
            "came_back": 0,
            "awaiting": 0,
            "rate": 1.0,
        }
    finally:
        await client.close()


FIELDS = st.sampled_from(["csat", "nps", "ces", "comment", "other"])


@given(st.dictionaries(FIELDS, st.text(max_size=2100) | st.from_regex(r"\d{1,3}", fullmatch=True)))
@settings(max_examples=300, deadline=None)
def test_the_form_reader_keeps_only_scores_on_their_scales(form: dict[str, str]) -> None:
    scores, comment, bad = read_form(form)
    for question, value in scores.items():
        low, high = surveys.SCALES[question]
        assert low <= value <= high
        assert int(form[question]) == value
    for question in surveys.SCALES:
        given_value = form.get(question, "")
        if given_value and question not in scores:
            assert bad
    if comment is not None:
        assert comment == unicodedata.normalize("NFC", comment) == comment.strip()
        assert len(comment) <= 2000 or bad


KEYS = Keyring([b"s" * 32])


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_only_signed_tokens_are_read(token: str) -> None:
    with pytest.raises(Invalid):
        surveys.verify(KEYS, token)


@given(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60)
)
@settings(max_examples=200, deadline=None)
def test_a_signed_token_reads_back_and_any_change_is_refused(survey_id: str) -> None:
    survey_id = survey_id.replace(".", "_")
    token = surveys.sign(KEYS, survey_id, 1_900_000_000_000_000)
    assert surveys.verify(KEYS, token) == (survey_id, 1_900_000_000_000_000)
    with pytest.raises(Invalid):
        surveys.verify(KEYS, token[:-1] + ("A" if token[-1] != "A" else "B"))
