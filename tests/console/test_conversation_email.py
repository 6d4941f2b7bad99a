"""An HTML e-mail on the conversation page, through the real Dovecot and SMTP relay: the
page shows the text the API has for it (the connector reads the HTML as text) and offers
the sanitised HTML only as a download, served as a sandboxed attachment; no markup of
the mail reaches the page."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr

from aiohttp.test_utils import TestClient, TestServer

from tests.api.helpers import eventually, get_json
from tests.console.conftest import ConsoleClient
from tests.email.conftest import Mailboxes, MailServer
from tests.email.conftest import mail_server as mail_server  # the fixtures
from tests.email.conftest import mailboxes as mailboxes
from tests.email.test_mailbox import Gateways, connected, conversations
from tests.email.test_mailbox import gateways as gateways

HTML = (
    "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
    "<p>Chào shop, <b>đơn DH-77</b> chưa tới.</p>"
    '<img src="x" onerror="alert(2)"><a href="javascript:alert(3)">bấm</a>'
    "<p>&lt;script&gt;alert(4)&lt;/script&gt;</p></body></html>"
)


async def test_an_html_mail_shows_as_text_and_its_html_only_as_a_download(
    mail_server: MailServer, mailboxes: Mailboxes, gateways: Gateways
) -> None:
    gw = await gateways.start(mail_server.channel_toml(mailboxes.support))
    await connected(gw)
    msg = EmailMessage()
    msg["From"] = formataddr(("Trần Thị <b>Bích</b>", mailboxes.customer))
    msg["To"] = mailboxes.support
    msg["Subject"] = "Đơn <i>DH-77</i>"
    msg.set_content(HTML, subtype="html")
    await mail_server.send(msg, mailboxes.customer, mailboxes.support)
    conv = (await eventually(lambda: conversations(gw), within=8))[0]
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        await console.signin()
        stored = await get_json(client, f"/v1/conversations/{conv.id}/messages")
        parts = stored["items"][0]["parts"]
        assert parts[0]["type"] == "text"
        assert "<b>" not in parts[0]["text"]
        [kept] = [p for p in parts if p.get("mime") == "text/html"]
        assert kept["type"] == "file"

        resp = await console.get(f"/console/conversations/{conv.id}")
        page = await resp.text()
        assert resp.status == 200, page[:1000]
        # the text the API has, as text
        assert "đơn DH-77" in page
        assert "&lt;script&gt;alert(4)&lt;/script&gt;" in page or "alert(4)" not in page
        # none of the mail's markup
        for raw in ("<b>", "<i>", "onerror", "javascript:", "<style", "alert(1)", "<script>alert"):
            assert raw not in page, raw
        # the subject and the sender's name as text
        assert "Đơn &lt;i&gt;DH-77&lt;/i&gt;" in page
        assert "Trần Thị &lt;b&gt;Bích&lt;/b&gt;" in page
        # the HTML: a download of our own, served so it cannot run as a page here
        link = f'href="/console/attachments/{kept["attachment_id"]}" download="message.html"'
        assert link in page
        assert 'src="/console/attachments/' not in page  # never shown inline
        resp = await console.get(f"/console/attachments/{kept['attachment_id']}")
        assert resp.status == 200
        assert resp.headers["Content-Disposition"].startswith("attachment")
        assert resp.headers["Content-Security-Policy"].startswith("sandbox")
        assert "<script" not in await resp.text()  # sanitised before it was kept
