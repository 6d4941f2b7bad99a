"""The channels pages: the list with each channel's state, source and URLs; channels of
the admin API added, changed and removed through forms (credentials write-only: never in
any page, "set" / "not set" instead); config-file channels read-only; admins only."""

from __future__ import annotations

import html as html_text
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
import respx
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, expect

from gateway.app import Gateway
from tests.api.helpers import eventually, get_json
from tests.conftest import AUTH, GatewayFactory
from tests.console.browser import served, signed_in
from tests.console.conftest import ConsoleClient, shot
from tests.facebook.helpers import APP_SECRET as FB_APP_SECRET
from tests.facebook.helpers import CHANNEL as FB_CHANNEL
from tests.facebook.helpers import raw as fb_raw
from tests.facebook.helpers import signed as fb_signed

Client = TestClient  # type: ignore[type-arg]
SECRET = "wc-identity-secret-NEVER-SHOWN-4711"
APP_SECRET = "fb-app-secret-NEVER-SHOWN-0815"
VERIFY = "fb-verify-token-NEVER-SHOWN-2323"
PAGE_TOKEN = "EAAGpageTOKEN-NEVER-SHOWN-9999"
NEW_PAGE_TOKEN = "EAAGpageTOKEN-NEW-NEVER-SHOWN-1111"
PAGE = "104000000000001"
PAGE2 = "104000000000002"
GRAPH = "https://graph.test/v25.0"


@pytest.fixture
def graph() -> Iterator[respx.MockRouter]:
    """Graph faked at httpx's transport: every call is recorded (none is expected when a
    channel is added: its page tokens are first used by the send path)."""
    with respx.mock(assert_all_called=False) as router:
        router.get(host="graph.test", path="/v25.0/me").respond(json={"id": PAGE, "name": "Shop"})
        yield router


async def _text(resp: Any) -> str:
    return await resp.text()  # type: ignore[no-any-return]


def _no_secrets(html: str, *values: str) -> None:
    for value in values:
        assert value not in html


class _Form(HTMLParser):
    """The fields a browser posts for the channel form of a page, as it stands."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._in_form = False
        self._select: str | None = None
        self._first: str | None = None
        self._chosen = False
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and "channel-form" in a.get("class", ""):
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and "name" in a:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields.append((a["name"], a.get("value", "on")))
            else:
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select, self._first, self._chosen = a["name"], None, False
        elif tag == "option" and self._select is not None:
            if self._first is None:
                self._first = a.get("value", "")
            if "selected" in a:
                self.fields.append((self._select, a.get("value", "")))
                self._chosen = True
        elif tag == "textarea":
            self._textarea, self._text = a["name"], ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select" and self._select is not None:
            if not self._chosen:
                self.fields.append((self._select, self._first or ""))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, self._text))
            self._textarea = None


def _as_posted(html: str, **changes: str) -> dict[str, str]:
    form = _Form()
    form.feed(html)
    fields = dict(form.fields)
    fields.pop("csrf", None)
    return {**fields, **changes}


def _script_errors(page: Page) -> list[str]:
    """Script errors and Content-Security-Policy refusals seen on ``page`` (a form answered
    400 is expected, and reported by Chromium as a failed load: not counted)."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    return errors


def _error_for(html: str, field: str) -> str:
    found = re.search(rf'data-error-for="{re.escape(field)}">([^<]*)<', html)
    assert found is not None, f"no error shown next to {field}"
    return html_text.unescape(found.group(1))


async def _add_webchat(console: ConsoleClient, **more: str) -> Any:
    fields = {
        "type": "webchat",
        "id": "wc-shop",
        "name": "Shop chat",
        "allowed_origins": "https://shop.example\nhttps://www.shop.example",
        "identity_secret": SECRET,
        "max_text_length": "2000",
        **more,
    }
    return await console.post("/console/channels/new", fields)


async def test_no_channel_or_agent_page_without_a_session(client: Client) -> None:
    for path in (
        "/console/channels",
        "/console/channels/list",
        "/console/channels/new?type=webchat",
        "/console/channels/webchat",
        "/console/channels/webchat/delete",
        "/console/agents",
        "/console/agents/list",
    ):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/console/signin?next=")
    resp = await client.post(
        "/console/channels/new", data={"type": "webchat"}, allow_redirects=False
    )
    assert resp.status == 303
    assert (await client.get("/v1/channels/wc-shop", headers=AUTH)).status == 404


async def test_the_list_shows_state_source_and_the_config_channel_read_only(
    console: ConsoleClient, client: Client
) -> None:
    await console.signin()
    resp = await console.get("/console/channels?lang=en")
    html = await _text(resp)
    assert resp.status == 200
    row = html[html.index('data-channel="webchat"') :]
    assert 'data-state="CONNECTED"' in row
    assert 'data-source="config"' in row and "Config file" in row
    assert ">View<" in row.split("</tr>")[0]  # no edit for a config-file channel
    # the webchat embed snippet, as text, for this server (no public_url: the request's origin)
    host = f"{client.server.host}:{client.server.port}"
    snippet = (
        f"&lt;script src=&#34;http://{host}/webchat/widget.js&#34; data-channel=&#34;webchat&#34; "
        "async&gt;&lt;/script&gt;"
    )
    assert snippet in html
    assert 'data-copy="embed-webchat"' in html
    assert "public_url is not set" in html
    page = await _text(await console.get("/console/channels/webchat?lang=en"))
    assert "data-readonly" in page and "read-only" in page
    assert '<form method="post" action="/console/channels/webchat"' not in page
    assert "/console/channels/webchat/delete" not in page
    # the API refuses a change all the same (a form posted by hand)
    resp = await console.post("/console/channels/webchat?lang=en", {"name": "x"})
    assert resp.status == 409
    assert "channel_in_config" in await _text(resp)


async def test_add_a_webchat_channel_and_its_secret_never_shows(
    console: ConsoleClient, client: Client, gw: Gateway
) -> None:
    await console.signin()
    resp = await _add_webchat(console)
    assert resp.status == 303, await _text(resp)
    assert resp.headers["Location"] == "/console/channels/wc-shop?done=created"
    shown = await get_json(client, "/v1/channels/wc-shop")
    assert shown["source"] == "api"
    assert shown["settings"]["name"] == "Shop chat"
    assert shown["settings"]["allowed_origins"] == [
        "https://shop.example",
        "https://www.shop.example",
    ]
    assert shown["settings"]["max_text_length"] == 2000
    assert shown["secrets"] == ["identity_secret"]
    assert gw.channel_admin.settings["wc-shop"].identity_secret.get_secret_value() == SECRET

    pages = {
        path: await _text(await console.get(path))
        for path in (
            "/console/channels?lang=en",
            "/console/channels/list?lang=en",
            "/console/channels/wc-shop?done=created&lang=en",
            "/console/channels/wc-shop?lang=vi",
        )
    }
    for html in pages.values():
        _no_secrets(html, SECRET)
    edit = pages["/console/channels/wc-shop?done=created&lang=en"]
    assert "Channel added." in edit
    assert 'data-secret-state="identity_secret">set<' in edit
    assert (
        'data-secret-state="identity_secret">đã đặt<' in pages["/console/channels/wc-shop?lang=vi"]
    )
    assert 'value="Shop chat"' in edit
    assert "https://shop.example\nhttps://www.shop.example</textarea>" in edit
    assert "data-channel=&#34;wc-shop&#34;" in edit  # its embed snippet


async def test_a_bad_value_is_shown_next_to_its_field_without_the_secret(
    console: ConsoleClient, client: Client
) -> None:
    await console.signin()
    resp = await _add_webchat(
        console, allowed_origins="shop.example", max_text_length="0", name="<b>kept</b>"
    )
    html = await _text(resp)
    assert resp.status == 400
    assert "is not an origin like https://shop.example" in _error_for(html, "allowed_origins")
    assert "greater than or equal to 1" in _error_for(html, "max_text_length")
    assert 'data-field="allowed_origins"' in html
    # what was typed comes back (as text), except the credentials
    assert 'value="&lt;b&gt;kept&lt;/b&gt;"' in html
    assert "shop.example</textarea>" in html
    _no_secrets(html, SECRET)
    assert (await client.get("/v1/channels/wc-shop", headers=AUTH)).status == 404
    # an id taken is shown on the id
    resp = await _add_webchat(console, id="webchat")
    html = await _text(resp)
    assert resp.status == 409
    assert "already exists" in _error_for(html, "id")
    _no_secrets(html, SECRET)


async def test_edit_a_name_keep_replace_and_remove_a_secret(
    console: ConsoleClient, client: Client, gw: Gateway
) -> None:
    await console.signin()
    assert (await _add_webchat(console)).status == 303
    await console.get("/console/channels/wc-shop")
    # only the name changes: the empty secret keeps its value
    form = {
        "name": "Shop chat <2>",
        "allowed_origins": "https://shop.example\nhttps://www.shop.example",
    }
    form["max_text_length"] = "2000"
    resp = await console.post("/console/channels/wc-shop", form)
    assert resp.status == 303, await _text(resp)
    assert resp.headers["Location"] == "/console/channels/wc-shop?done=saved"
    shown = await get_json(client, "/v1/channels/wc-shop")
    assert shown["settings"]["name"] == "Shop chat <2>"
    assert shown["secrets"] == ["identity_secret"]
    assert gw.channel_admin.settings["wc-shop"].identity_secret.get_secret_value() == SECRET
    html = await _text(await console.get("/console/channels/wc-shop?lang=en"))
    assert 'value="Shop chat &lt;2&gt;"' in html
    assert "Shop chat <2>" not in html
    # a value replaces it
    resp = await console.post(
        "/console/channels/wc-shop", {**form, "identity_secret": "new-one-77"}
    )
    assert resp.status == 303
    assert gw.channel_admin.settings["wc-shop"].identity_secret.get_secret_value() == "new-one-77"
    # removing it is a choice of its own
    resp = await console.post("/console/channels/wc-shop", {**form, "clear:identity_secret": "1"})
    assert resp.status == 303
    assert (await get_json(client, "/v1/channels/wc-shop"))["secrets"] == []
    html = await _text(await console.get("/console/channels/wc-shop?lang=en"))
    assert 'data-secret-state="identity_secret">not set<' in html
    # a bad value on edit: shown by its field, nothing changed
    resp = await console.post("/console/channels/wc-shop", {**form, "max_text_length": "many"})
    assert resp.status == 400
    assert "valid integer" in _error_for(await _text(resp), "max_text_length")
    assert (await get_json(client, "/v1/channels/wc-shop"))["settings"]["max_text_length"] == 2000


async def test_facebook_channel_urls_rows_and_credentials_asked_again(
    console: ConsoleClient, client: Client, graph: respx.MockRouter
) -> None:
    await console.signin()
    resp = await console.post(
        "/console/channels/new",
        {
            "type": "facebook",
            "id": "fb-shop",
            "app_secret": APP_SECRET,
            "verify_token": VERIFY,
            "pages.0.id": PAGE,
            "pages.0.access_token": PAGE_TOKEN,
            "api_base": GRAPH,
            "appsecret_proof": "true",
        },
    )
    assert resp.status == 303, await _text(resp)
    shown = await get_json(client, "/v1/channels/fb-shop")
    assert shown["settings"]["pages"] == [{"id": PAGE}]
    assert shown["settings"]["human_agent_tag"] is False
    assert shown["secrets"] == ["app_secret", "verify_token", "pages[0].access_token"]
    assert not graph.calls  # adding a channel checks nothing at Graph
    # the webhook really answers Meta's check with the verify token typed
    challenge = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"}
    resp = await client.get("/webhooks/fb-shop", params=challenge)
    assert (resp.status, await resp.text()) == (200, "42")

    html = await _text(await console.get("/console/channels/fb-shop?lang=en"))
    host = f"{client.server.host}:{client.server.port}"
    assert f'id="webhook-fb-shop">http://{host}/webhooks/fb-shop<' in html
    assert 'data-copy="webhook-fb-shop"' in html
    assert "Verify token: The value of verify_token (set)" in html
    assert 'data-secret-state="pages.0.access_token">set<' in html
    assert 'name="pages.1.id" value=""' in html  # room for one more page
    _no_secrets(html, APP_SECRET, VERIFY, PAGE_TOKEN)

    # another Page: the list is replaced whole, so the first page's token is asked again
    base = {"pages.0.id": PAGE, "pages.1.id": PAGE2, "pages.1.access_token": NEW_PAGE_TOKEN}
    resp = await console.post("/console/channels/fb-shop?lang=en", base)
    html = await _text(resp)
    assert resp.status == 400
    assert "give this page's token again" in _error_for(html, "pages.0.access_token")
    _no_secrets(html, APP_SECRET, VERIFY, PAGE_TOKEN, NEW_PAGE_TOKEN)
    resp = await console.post(
        "/console/channels/fb-shop", {**base, "pages.0.access_token": PAGE_TOKEN, "api_base": GRAPH}
    )
    assert resp.status == 303, await _text(resp)
    shown = await get_json(client, "/v1/channels/fb-shop")
    assert shown["settings"]["pages"] == [{"id": PAGE}, {"id": PAGE2}]

    # moving api_base: the API asks for the credentials sent there, shown by field
    moved = {"pages.0.id": PAGE, "pages.1.id": PAGE2, "api_base": "https://graph.other/v25.0"}
    resp = await console.post("/console/channels/fb-shop?lang=en", moved)
    html = await _text(resp)
    assert resp.status == 422
    for field in ("app_secret", "pages.0.access_token", "pages.1.access_token"):
        assert "credentials sent there must be given again" in _error_for(html, field)
    assert 'value="https://graph.other/v25.0"' in html
    _no_secrets(html, APP_SECRET, VERIFY, PAGE_TOKEN, NEW_PAGE_TOKEN)
    # a page id that is not one: by its row, and the credentials typed are not shown back
    typed = {"app_secret": APP_SECRET, "pages.0.access_token": PAGE_TOKEN}
    typed["pages.1.access_token"] = NEW_PAGE_TOKEN
    resp = await console.post("/console/channels/fb-shop", {**moved, **typed, "pages.1.id": "shop"})
    html = await _text(resp)
    assert resp.status == 400
    assert "should match pattern" in _error_for(html, "pages.1.id")
    assert 'name="pages.1.id" value="shop"' in html
    _no_secrets(html, APP_SECRET, VERIFY, PAGE_TOKEN, NEW_PAGE_TOKEN)
    assert (await get_json(client, "/v1/channels/fb-shop"))["settings"]["api_base"] == GRAPH


async def test_zalo_webhook_url_on_public_url_and_template_lines(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(**{"server.public_url": "https://gw.example/"})
    async with TestClient(TestServer(gw.web_app())) as client:
        console = ConsoleClient(client)
        await console.signin()
        fields = {
            "type": "zalo",
            "id": "zalo-shop",
            "oa_id": "579745863508352884",
            "app_id": "1847265093412765431",
            "app_secret": "zalo-app-secret-NEVER-SHOWN",
            "oa_secret_key": "zalo-oa-key-NEVER-SHOWN",
            "access_token": "zalo-access-NEVER-SHOWN",
            "refresh_token": "zalo-refresh-NEVER-SHOWN",
            "zns_templates": "order_confirmed 123456",
        }
        resp = await console.post("/console/channels/new?lang=en", fields)
        html = await _text(resp)
        assert resp.status == 400
        assert "name = id" in _error_for(html, "zns_templates")
        _no_secrets(html, *(v for k, v in fields.items() if "NEVER" in v))
        fields["zns_templates"] = "order_confirmed = 123456\nshipped = 654321"
        resp = await console.post("/console/channels/new", fields)
        assert resp.status == 303, await _text(resp)
        shown = await get_json(client, "/v1/channels/zalo-shop")
        assert shown["settings"]["zns_templates"] == {
            "order_confirmed": "123456",
            "shipped": "654321",
        }
        html = await _text(await console.get("/console/channels/zalo-shop?lang=en"))
        assert 'id="webhook-zalo-shop">https://gw.example/webhooks/zalo-shop<' in html
        assert "From [server] public_url." in html
        _no_secrets(html, *(v for k, v in fields.items() if "NEVER" in v))


async def test_an_email_channel_through_its_sections(
    console: ConsoleClient, client: Client
) -> None:
    await console.signin()
    fields = {
        "type": "email",
        "id": "support-mail",
        "address": "support@shop.example",
        "imap.host": "imap.shop.example",
        "imap.username": "support@shop.example",
        "imap.password": "imap-pass-NEVER-SHOWN",
        "imap.security": "tls",
        "smtp.host": "smtp.shop.example",
        "smtp.security": "starttls",
        "smtp.username": "support@shop.example",
        "idle": "true",
    }
    # smtp.password missing while smtp.username is given: the model's own check
    resp = await console.post("/console/channels/new?lang=en", fields)
    html = await _text(resp)
    assert resp.status == 400
    assert "set both smtp username and password, or neither" in html
    _no_secrets(html, "imap-pass-NEVER-SHOWN")
    resp = await console.post(
        "/console/channels/new", {**fields, "smtp.password": "smtp-pass-NEVER-SHOWN"}
    )
    assert resp.status == 303, await _text(resp)
    shown = await get_json(client, "/v1/channels/support-mail")
    assert shown["secrets"] == ["imap.password", "smtp.password"]
    assert shown["settings"]["imap"]["host"] == "imap.shop.example"
    assert shown["settings"]["idle"] is True
    assert shown["settings"]["mark_seen"] is False
    html = await _text(await console.get("/console/channels/support-mail?lang=en"))
    assert 'data-secret-state="imap.password">set<' in html
    assert 'data-secret-state="oauth.refresh_token">not set<' in html
    _no_secrets(html, "imap-pass-NEVER-SHOWN", "smtp-pass-NEVER-SHOWN")


async def test_remove_a_channel_after_confirming(console: ConsoleClient, client: Client) -> None:
    await console.signin()
    assert (await _add_webchat(console)).status == 303
    page = await _text(await console.get("/console/channels/wc-shop/delete?lang=en"))
    assert "Remove channel wc-shop?" in page
    assert (await client.get("/v1/channels/wc-shop", headers=AUTH)).status == 200
    resp = await console.post("/console/channels/wc-shop/delete")
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/channels?done=deleted"
    assert (await client.get("/v1/channels/wc-shop", headers=AUTH)).status == 404
    # a config-file channel cannot be removed
    resp = await console.post("/console/channels/webchat/delete")
    assert resp.status == 409


async def test_names_show_as_text(console: ConsoleClient) -> None:
    await console.signin()
    name = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    assert (await _add_webchat(console, name=name)).status == 303
    for path in ("/console/channels", "/console/channels/list", "/console/channels/wc-shop"):
        html = await _text(await console.get(path))
        assert "<script>alert(1)" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path


async def test_agent_tokens_get_no_channel_page(console: ConsoleClient, client: Client) -> None:
    resp = await client.put("/v1/agents/lan", json={"name": "Lan"}, headers=AUTH)
    assert resp.status == 201
    resp = await client.post(
        "/v1/tokens", json={"name": "lan", "scopes": ["agent"], "agent_id": "lan"}, headers=AUTH
    )
    token = (await resp.json())["token"]
    assert (await console.signin(token)).status == 303
    for path in (
        "/console/channels",
        "/console/channels/new?type=webchat",
        "/console/channels/webchat",
    ):
        resp = await console.get(path)
        assert resp.status == 403, path
        assert "insufficient_scope" in await _text(resp)
    resp = await console.post("/console/channels/new", {"type": "webchat", "id": "x"})
    assert resp.status == 403
    html = await _text(await console.get("/console/inbox"))
    assert 'data-section="channels"' not in html
    assert 'data-section="agents"' in html


async def test_in_chromium_add_webchat_and_facebook_edit_and_see_errors(
    make_gateway: GatewayFactory, browser: Browser
) -> None:
    gw = await make_gateway()
    with respx.mock(assert_all_mocked=False, assert_all_called=False) as graph:
        me = graph.get(host="graph.test", path="/v25.0/me").respond(json={"id": PAGE})
        async with served(gw) as base, aiohttp.ClientSession(base, headers=AUTH) as api:
            page = await signed_in(browser, base)
            errors = _script_errors(page)
            await page.goto(f"{base}/console/channels?lang=en")
            config_row = page.locator('tr[data-channel="webchat"]')
            await expect(config_row.locator("[data-source]")).to_have_text("Config file")
            await expect(config_row.locator("[data-state]")).to_have_text("CONNECTED")
            await expect(page.locator("#embed-webchat")).to_contain_text(
                f'<script src="{base}/webchat/widget.js" data-channel="webchat" async></script>'
            )

            # webchat, through its form
            await page.click('a[data-add="webchat"]')
            await page.fill("#f-id", "wc-browser")
            await page.fill("#f-name", "Shop chat")
            await page.fill('textarea[name="allowed_origins"]', "https://shop.example")
            await page.fill('input[name="identity_secret"]', SECRET)
            await shot(page, "channel-add-form")
            await page.click('button[data-action="save"]')
            await page.wait_for_url("**/console/channels/wc-browser?done=created")
            await expect(page.locator("[data-notice]")).to_have_text("Channel added.")
            await expect(page.locator('[data-secret-state="identity_secret"]')).to_have_text("set")
            assert SECRET not in await page.content()

            # Facebook: pages in rows, api_base under "more settings"
            await page.goto(f"{base}/console/channels/new?type=facebook&lang=en")
            await page.fill("#f-id", "fb-browser")
            await page.fill('input[name="app_secret"]', APP_SECRET)
            await page.fill('input[name="verify_token"]', VERIFY)
            await page.fill('input[name="pages.0.id"]', PAGE)
            await page.fill('input[name="pages.0.access_token"]', PAGE_TOKEN)
            await page.click("details.more summary")
            await page.fill('input[name="api_base"]', GRAPH)
            await page.click('button[data-action="save"]')
            await page.wait_for_url("**/console/channels/fb-browser?done=created")
            await expect(page.locator("#webhook-fb-browser")).to_have_text(
                f"{base}/webhooks/fb-browser"
            )
            await expect(page.locator("[data-verify-token]")).to_contain_text("(set)")
            await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
            await page.click('button[data-copy="webhook-fb-browser"]')
            copied = await page.evaluate("navigator.clipboard.readText()")
            assert copied == f"{base}/webhooks/fb-browser"
            assert not me.calls and not graph.calls  # adding it made no Graph call
            resp = await api.get(
                "/webhooks/fb-browser",
                params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "7"},
            )
            assert (resp.status, await resp.text()) == (200, "7")

            # edit the name
            await page.fill("#f-name", "Shop on Messenger")
            await page.click('button[data-action="save"]')
            await page.wait_for_url("**/console/channels/fb-browser?done=saved")
            await expect(page.locator("#f-name")).to_have_value("Shop on Messenger")
            detail = await (await api.get("/v1/channels/fb-browser")).json()
            assert detail["settings"]["name"] == "Shop on Messenger"

            # a bad value: its error next to it, the section holding it opened
            await page.click("details.more summary")
            await page.fill('input[name="max_body_bytes"]', "12")
            await page.fill('input[name="app_secret"]', "typed-and-never-shown-back")
            await page.click('button[data-action="save"]')
            error = page.locator('[data-field="max_body_bytes"] [data-error-for="max_body_bytes"]')
            await expect(error).to_contain_text("greater than or equal to 1024")
            await expect(error).to_be_visible()
            await expect(page.locator('input[name="max_body_bytes"]')).to_have_value("12")
            await shot(page, "channel-edit-error")
            html = await page.content()
            for value in (APP_SECRET, VERIFY, PAGE_TOKEN, "typed-and-never-shown-back"):
                assert value not in html

            # the list follows channels' state live: one added elsewhere shows up
            await page.goto(f"{base}/console/channels?lang=en")
            await expect(page.locator('tr[data-channel="fb-browser"] td').nth(2)).to_have_text(
                "Shop on Messenger"
            )
            resp = await api.post("/v1/channels", json={"id": "wc-live", "type": "webchat"})
            assert resp.status == 201
            await expect(page.locator('tr[data-channel="wc-live"] [data-state]')).to_have_text(
                "CONNECTED", timeout=10_000
            )
            assert SECRET not in await page.content()
            await shot(page, "channels-list")
            assert not errors, errors


async def test_forms_posted_as_they_stand(console: ConsoleClient, client: Client) -> None:
    """What a browser posts from each form: a new channel with only what is required (the
    optional e-mail OAuth section left as it came), then its edit form unchanged."""
    await console.signin()
    required = {
        "webchat": {},
        "facebook": {
            "app_secret": APP_SECRET,
            "verify_token": VERIFY,
            "pages.0.id": PAGE,
            "pages.0.access_token": PAGE_TOKEN,
            "api_base": GRAPH,
        },
        "zalo": {
            "oa_id": "579745863508352884",
            "app_id": "1847265093412765431",
            "app_secret": "s1",
            "oa_secret_key": "s2",
            "access_token": "s3",
            "refresh_token": "s4",
        },
        "email": {
            "address": "help@shop.example",
            "imap.host": "imap.shop.example",
            "imap.username": "help",
            "imap.password": "imap-pass-NEVER-SHOWN",
            "smtp.host": "smtp.shop.example",
        },
    }
    for type_, fields in required.items():
        html = await _text(await console.get(f"/console/channels/new?type={type_}"))
        posted = _as_posted(html, id=f"new-{type_}", **fields)
        assert posted["type"] == type_
        resp = await console.post("/console/channels/new", posted)
        assert resp.status == 303, (type_, await _text(resp))
        html = await _text(await console.get(f"/console/channels/new-{type_}"))
        resp = await console.post(f"/console/channels/new-{type_}", _as_posted(html))
        assert resp.status == 303, (type_, await _text(resp))
        assert resp.headers["Location"].endswith("?done=unchanged"), type_
    shown = await get_json(client, "/v1/channels/new-email")
    assert "oauth" not in shown["settings"] or shown["settings"]["oauth"] is None
    assert shown["settings"]["imap"]["security"] == "tls"


async def test_a_channel_graph_refuses_shows_its_state_and_reason(
    console: ConsoleClient, client: Client
) -> None:
    """Adding a channel checks no credential at Graph: Meta refusing the page token shows
    later, on the first call, as BAD_CREDENTIALS with the reason (on the list, live)."""
    refusal = {
        "error": {
            "message": "Error validating access token: the session has been invalidated.",
            "type": "OAuthException",
            "code": 190,
            "fbtrace_id": "AbCdEfGh123",
        }
    }
    with respx.mock(assert_all_called=False) as graph:
        send = graph.post(host="graph.test", path__regex=r"^/v25\.0/[0-9]+/messages$")
        send.respond(400, json=refusal)
        graph.get(host="graph.test", path__regex=r"^/v25\.0/[0-9]+$").respond(json={})
        graph.get(host="graph.test", path="/v25.0/me").respond(400, json=refusal)
        await console.signin()
        resp = await console.post(
            "/console/channels/new",
            {
                "type": "facebook",
                "id": FB_CHANNEL,
                "app_secret": FB_APP_SECRET,
                "verify_token": VERIFY,
                "pages.0.id": PAGE,
                "pages.0.access_token": PAGE_TOKEN,
                "api_base": GRAPH,
                "appsecret_proof": "true",
                "credentials_recheck_seconds": "600",
            },
        )
        assert resp.status == 303, await _text(resp)
        assert not graph.calls
        html = await _text(await console.get("/console/channels/list"))
        assert f'<tr data-channel="{FB_CHANNEL}">' in html
        assert 'data-state="CONNECTED"' in html.split(f'data-channel="{FB_CHANNEL}"')[1]

        body = fb_raw("message_text")
        resp = await client.post(f"/webhooks/{FB_CHANNEL}", data=body, headers=fb_signed(body))
        assert resp.status == 200
        found = await eventually(
            lambda: get_json(client, f"/v1/conversations?channel_id={FB_CHANNEL}")
        )
        conversation = found["items"][0]["id"]
        resp = await client.post(
            f"/v1/conversations/{conversation}/messages", json={"text": "Chào bạn"}, headers=AUTH
        )
        assert resp.status == 202

        async def refused() -> dict[str, Any] | None:
            shown: dict[str, Any] = await get_json(client, f"/v1/channels/{FB_CHANNEL}")
            return shown if shown["state"] == "BAD_CREDENTIALS" else None

        shown = await eventually(refused)
        html = await _text(await console.get("/console/channels/list?lang=en"))
        row = html.split(f'data-channel="{FB_CHANNEL}"')[1].split("</tr>")[0]
        assert 'data-state="BAD_CREDENTIALS"' in row
        assert shown["detail"] and html_text.escape(shown["detail"]) in row
        _no_secrets(html, FB_APP_SECRET, VERIFY, PAGE_TOKEN)
