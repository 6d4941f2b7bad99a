"""OAuth 2.0 mail logins (XOAUTH2, OAUTHBEARER) against a real Dovecot whose oauth2 passdb
checks tokens at an introspection endpoint, and an SMTP relay that checks them there too.
The provider (token endpoint + introspection) is a local aiohttp server in the test."""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.base import HealthState
from connectors.email.oauth import STATE_KEY, sasl, sasl_oauthbearer, sasl_xoauth2
from kernel.models import MessageStatus
from tests.api.helpers import eventually
from tests.conftest import AUTH
from tests.email.conftest import Mailboxes, MailServer, running_mail_server
from tests.email.test_mailbox import (
    CHANNEL,
    Gateways,
    connected,
    connector,
    conversations,
    customer_mail,
    inbox,
    reply_as_agent,
    sent,
)

CLIENT_ID = "omnigw-test-client"
CLIENT_SECRET = "Cl13nt-s3cret-value"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Provider:
    """A token endpoint (RFC 6749 6, refresh grant) and an introspection endpoint (RFC
    7662) as Google's or Microsoft's would answer, for one mailbox user."""

    user: str
    refresh_token: str = field(default_factory=lambda: "rt-" + secrets.token_urlsafe(16))
    expires_in: int = 3600
    expires_as_text: bool = False  # "3600", as some endpoints write it
    rotate: bool = True
    active: dict[str, float] = field(default_factory=dict)  # access token -> expiry
    issued: list[str] = field(default_factory=list)
    refused_grants: int = 0
    introspected: int = 0
    _n: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != (
            self.refresh_token
        ):
            self.refused_grants += 1
            return web.json_response({"error": "invalid_grant"}, status=400)
        access = f"at-{next(self._n)}-" + secrets.token_urlsafe(12)
        self.active[access] = time.time() + self.expires_in
        self.issued.append(access)
        answer: dict[str, object] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": str(self.expires_in) if self.expires_as_text else self.expires_in,
        }
        if self.rotate:  # as Microsoft does: the old refresh token is spent
            self.refresh_token = "rt-" + secrets.token_urlsafe(16)
            answer["refresh_token"] = self.refresh_token
        return web.json_response(answer)

    async def introspect(self, request: web.Request) -> web.Response:
        self.introspected += 1
        token = str((await request.post()).get("token", ""))
        if self.active.get(token, 0) < time.time():
            return web.json_response({"active": False})
        return web.json_response({"active": True, "username": self.user})

    def revoke_all(self) -> None:
        self.active.clear()


@dataclass
class OAuthMail:
    server: MailServer
    provider_port: int


@pytest.fixture(scope="module")
def oauth_mail() -> Iterator[OAuthMail]:
    port = _free_port()
    introspection = f"http://127.0.0.1:{port}/introspect"
    with running_mail_server({"MAIL_OAUTH_INTROSPECTION": introspection}) as server:
        yield OAuthMail(server, port)


@pytest.fixture
async def provider(oauth_mail: OAuthMail, mailboxes_oauth: Mailboxes) -> AsyncIterator[Provider]:
    found = Provider(mailboxes_oauth.support)
    app = web.Application()
    app.router.add_post("/token", found.token)
    app.router.add_post("/introspect", found.introspect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", oauth_mail.provider_port)
    await site.start()
    try:
        yield found
    finally:
        await runner.cleanup()


@pytest.fixture
def mailboxes_oauth(oauth_mail: OAuthMail) -> Mailboxes:
    return oauth_mail.server.mailboxes()


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[Gateways]:
    gws = Gateways(tmp_path)
    yield gws
    for gw in list(gws.running):
        await gws.stop(gw)


def oauth_toml(
    env: OAuthMail, provider: Provider, support: str, *, mechanism: str = "xoauth2"
) -> str:
    oauth = (
        f'oauth = {{ token_url = "http://127.0.0.1:{env.provider_port}/token", '
        f'client_id = "{CLIENT_ID}", client_secret = "{CLIENT_SECRET}", '
        f'refresh_token = "{provider.refresh_token}", mechanism = "{mechanism}" }}'
    )
    return env.server.channel_toml(
        support,
        oauth,
        imap={"password": None},
        smtp={"username": support},
    )


def test_sasl_initial_responses() -> None:
    assert (
        base64.b64decode(sasl_xoauth2("a@b.vn", "tok")) == b"user=a@b.vn\x01auth=Bearer tok\x01\x01"
    )
    assert sasl("XOAUTH2", "a@b.vn", "tok", "h", 1) == sasl_xoauth2("a@b.vn", "tok")
    assert sasl("OAUTHBEARER", "a@b.vn", "tok", "h", 1) == sasl_oauthbearer("a@b.vn", "tok", "h", 1)
    assert base64.b64decode(sasl_oauthbearer("a,=b@c.vn", "tok", "imap.x", 993)) == (
        b"n,a=a=2C=3Db@c.vn,\x01host=imap.x\x01port=993\x01auth=Bearer tok\x01\x01"
    )


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
async def test_mail_in_and_out_with_an_oauth_login(
    oauth_mail: OAuthMail,
    mailboxes_oauth: Mailboxes,
    provider: Provider,
    gateways: Gateways,
    mechanism: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mb, server = mailboxes_oauth, oauth_mail.server
    configured = provider.refresh_token
    gw = await gateways.start(oauth_toml(oauth_mail, provider, mb.support, mechanism=mechanism))
    await connected(gw, within=15)
    assert len(provider.issued) == 1  # the IMAP login asked for the first access token

    await server.send(customer_mail(mb, "Hỏi về OAuth", "Chào shop"), mb.customer, mb.support)
    [conv] = await eventually(lambda: conversations(gw), within=10)
    async with TestClient(TestServer(gw.web_app())) as client:
        out = await sent(gw, await reply_as_agent(client, conv.id, "Dạ, shop trả lời ạ."))
        listed = await (await client.get(f"/v1/channels/{CHANNEL}", headers=AUTH)).text()
    assert out.status == MessageStatus.SENT, out.error
    [delivered] = await inbox(server, mb.customer, 1)
    assert delivered["Message-ID"] == f"<{out.external_id}>"
    assert len(provider.issued) == 1  # SMTP used the same token: no second refresh
    assert provider.introspected >= 2  # Dovecot and the relay each checked it

    # The rotated refresh token and the access token are kept sealed, and shown nowhere.
    stored = await gw.store.channel_state.load(CHANNEL, STATE_KEY)
    assert isinstance(stored, dict) and stored["sealed"]
    database = b"".join(p.read_bytes() for p in (gateways.tmp_path / "data").rglob("*.db*"))
    shown = listed + caplog.text + repr(gw.settings) + repr(connector(gw).oauth)
    for secret in (provider.refresh_token, configured, provider.issued[0], CLIENT_SECRET):
        assert secret.encode() not in database
        assert secret not in shown


async def test_a_refused_token_is_refreshed_once_and_the_login_retried(
    oauth_mail: OAuthMail, mailboxes_oauth: Mailboxes, provider: Provider, gateways: Gateways
) -> None:
    mb, server = mailboxes_oauth, oauth_mail.server
    toml = oauth_toml(oauth_mail, provider, mb.support)
    gw = await gateways.start(toml)
    await connected(gw, within=15)
    await server.send(customer_mail(mb, "Hỏi", "Chào"), mb.customer, mb.support)
    [conv] = await eventually(lambda: conversations(gw), within=10)

    provider.revoke_all()  # the server now refuses the token before its expiry says so
    async with TestClient(TestServer(gw.web_app())) as client:
        out = await sent(gw, await reply_as_agent(client, conv.id, "Trả lời sau khi thu hồi"))
    assert out.status == MessageStatus.SENT, out.error
    assert len(provider.issued) == 2  # one refresh, on the refusal

    # After a restart the stored (rotated) pair is used: the configured refresh token is
    # spent, and the IMAP login refreshes from the stored one.
    await gateways.stop(gw)
    provider.revoke_all()
    gw = await gateways.start(toml)
    await connected(gw, within=15)
    assert len(provider.issued) == 3
    assert provider.refused_grants == 0


async def test_a_token_about_to_expire_is_refreshed_before_use(
    oauth_mail: OAuthMail, mailboxes_oauth: Mailboxes, provider: Provider, gateways: Gateways
) -> None:
    mb, server = mailboxes_oauth, oauth_mail.server
    provider.expires_in = 302  # refreshed 300 s ahead: stale after 2 s
    provider.expires_as_text = True
    gw = await gateways.start(oauth_toml(oauth_mail, provider, mb.support))
    await connected(gw, within=15)
    await server.send(customer_mail(mb, "Hỏi", "Chào"), mb.customer, mb.support)
    [conv] = await eventually(lambda: conversations(gw), within=10)
    await asyncio.sleep(2.2)
    seen_before = provider.introspected
    async with TestClient(TestServer(gw.web_app())) as client:
        out = await sent(gw, await reply_as_agent(client, conv.id, "Token mới"))
    assert out.status == MessageStatus.SENT, out.error
    assert len(provider.issued) == 2
    # The relay checked one token for this send: the fresh one, not a refused stale one.
    assert provider.introspected == seen_before + 1


async def test_one_refresh_at_a_time(
    oauth_mail: OAuthMail, mailboxes_oauth: Mailboxes, provider: Provider, gateways: Gateways
) -> None:
    gw = await gateways.start(oauth_toml(oauth_mail, provider, mailboxes_oauth.support))
    await connected(gw, within=15)
    tokens = connector(gw).oauth
    assert tokens is not None
    current = await tokens.access()
    found = await asyncio.gather(*(tokens.refresh(current) for _ in range(8)))
    assert len(set(found)) == 1 and found[0] != current
    assert len(provider.issued) == 2


async def test_a_refused_grant_shows_bad_credentials(
    oauth_mail: OAuthMail, mailboxes_oauth: Mailboxes, provider: Provider, gateways: Gateways
) -> None:
    toml = oauth_toml(oauth_mail, provider, mailboxes_oauth.support)
    provider.refresh_token = "rt-revoked-by-the-user"  # the configured one is refused now
    gw = await gateways.start(toml)

    async def refused() -> bool:
        return connector(gw).health.state == HealthState.BAD_CREDENTIALS

    await eventually(refused, within=10)
    async with TestClient(TestServer(gw.web_app())) as client:
        ready = await (await client.get("/readyz")).json()
    assert ready["channels"]["mail"]["state"] == "BAD_CREDENTIALS"
    assert provider.refused_grants >= 1


async def test_replicas_refresh_one_at_a_time(
    pg_url: str,  # first: the database outlives the gateways
    oauth_mail: OAuthMail,
    mailboxes_oauth: Mailboxes,
    provider: Provider,
    gateways: Gateways,
) -> None:
    """Two processes on one PostgreSQL store: the refresh runs under the named lease, and
    the second process takes the pair the first one stored."""
    toml = oauth_toml(oauth_mail, provider, mailboxes_oauth.support)
    toml = f'[store]\nurl = "{pg_url}"\n' + toml
    first, second = await gateways.start(toml), await gateways.start(toml)

    async def logged_in() -> bool:  # whichever replica reads the mailbox
        return len(provider.issued) == 1

    await eventually(logged_in, within=15)
    one, two = connector(first).oauth, connector(second).oauth
    assert one is not None and two is not None
    current = await one.access()
    assert current == await two.access() == provider.issued[0]
    found = await asyncio.gather(*(t.refresh(current) for t in (one, two, two, one, two)))
    assert len(set(found)) == 1 and found[0] != current
    assert len(provider.issued) == 2 and provider.refused_grants == 0
