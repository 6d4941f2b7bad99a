"""A survey by e-mail through the real Dovecot and SMTP relay: after resolution the
customer receives a mail with a signed link, answers on the page it leads to, and the
conversation stays resolved."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient, TestServer

from tests.api.helpers import eventually
from tests.conftest import AUTH
from tests.email.conftest import Mailboxes, MailServer
from tests.email.test_mailbox import (
    Gateways,
    connected,
    conversations,
    customer_mail,
    inbox,
)
from tests.email.test_mailbox import gateways as gateways  # the fixture

PUBLIC = "https://help.hoamai.test"
SURVEYS = f"""
[server]
public_url = "{PUBLIC}"

[surveys]
enabled = true
delay = 0
sweep_interval = 0.1
"""


async def test_a_survey_link_by_mail_is_answered_on_the_page(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    gw = await gateways.start(SURVEYS + mail_server.channel_toml(mailboxes.support))
    await connected(gw)
    await mail_server.send(
        customer_mail(mailboxes, "Đổi size áo", "Chào shop, mình muốn đổi size áo."),
        mailboxes.customer,
        mailboxes.support,
    )
    conv = (await eventually(lambda: conversations(gw), within=8))[0]
    async with TestClient(TestServer(gw.web_app())) as client:
        resp = await client.post(f"/v1/conversations/{conv.id}/resolve", headers=AUTH)
        assert resp.status == 200, await resp.text()

        [mail] = await inbox(mail_server, mailboxes.customer, 1)
        body = mail.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        links = re.findall(re.escape(PUBLIC) + r"/surveys/[A-Za-z0-9_.\-]+", text)
        assert len(set(links)) == 1, text
        path = urlsplit(links[0]).path

        page = await client.get(path)
        assert page.status == 200
        assert 'name="csat"' in await page.text()
        answer = await client.post(path, data={"csat": "5", "comment": "Đổi rất nhanh, cảm ơn!"})
        assert answer.status == 200

        survey = await (
            await client.get(f"/v1/conversations/{conv.id}/survey", headers=AUTH)
        ).json()
        assert (survey["way"], survey["csat"], survey["comment"]) == (
            "link",
            5,
            "Đổi rất nhanh, cảm ơn!",
        )
        current = await (await client.get(f"/v1/conversations/{conv.id}", headers=AUTH)).json()
        assert current["status"] == "resolved"
        assert len(await conversations(gw)) == 1
