"""Key rotation across restarts: OMNIGW_SECRET_KEY lists the new key before the old one,
`omnigw rotate-secrets` seals everything again under the new key while the gateway runs,
and a restart with the new key alone still reads every channel, webhook secret and Zalo
token pair; visitor tokens signed with the old key hold while it is listed, not after."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from connectors.email import token
from gateway.app import Gateway
from gateway.keys import KEY_CHECK, key_check
from kernel.secrets import Keyring, SecretBox, Unsealable
from tests.api.helpers import eventually, get_json, open_visitor, say
from tests.conftest import GatewayFactory
from tests.e2e.server import REPO_ROOT
from tests.keys.helpers import KEY_A, KEY_B, add_channel, add_webhook
from tests.providers import reply, settled
from tests.webhooks.receiver import Receiver
from tests.zalo.conftest import ZaloFake, Zl, zalo_error
from tests.zalo.helpers import config as zalo_config
from tests.zalo.test_send import customer_writes

WEBCHAT_AND_HOOKS = """
[[channels]]
id = "webchat"
type = "webchat"

[webhook_delivery]
allow_loopback = true
retry_schedule = [0, 0.05, 0.1, 0.2]
timeout = 1
"""


def _config(data: Path, store_url: str | None) -> str:
    store = f'[store]\nurl = "{store_url}"\n' if store_url else ""
    head = f'[server]\ndata_dir = "{data}"\n{store}\n'
    return head + zalo_config() + WEBCHAT_AND_HOOKS


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


def _rotate(config: Path, keys: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGW_")}
    env["OMNIGW_SECRET_KEY"] = keys
    command = [sys.executable, "-m", "gateway", "rotate-secrets", "--config", str(config)]
    return subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )


async def _stop(gw: Gateway) -> None:
    await gw.close_connections()
    await gw.stop()


async def _state(gw: Gateway, channel: str) -> dict[str, Any]:
    async with TestClient(TestServer(gw.web_app())) as client:
        found: dict[str, Any] = await get_json(client, "/readyz", headers={})
    state: dict[str, Any] = found["channels"][channel]
    return state


async def _connected(gw: Gateway, channel: str) -> bool:
    return (await _state(gw, channel))["state"] == "CONNECTED"


async def _visitor(gw: Gateway, token_: str | None) -> str:
    """The visitor id the gateway gives a socket opened with this token."""
    async with TestClient(TestServer(gw.web_app())) as client:
        ws, session = await open_visitor(client, token_)
        await ws.close()
    return str(session["visitor_id"])


async def test_rotation_across_restarts(
    make_gateway: GatewayFactory,
    tmp_path: Path,
    store_url: str | None,
    receiver: Receiver,
    zalo: ZaloFake,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = tmp_path / "omnigw.toml"
    config.write_text(_config(tmp_path / "data", store_url), encoding="utf-8")
    toml = config.read_text(encoding="utf-8")

    # 1. The old key alone: an API channel, an API webhook, a refreshed Zalo pair, a visitor.
    monkeypatch.setenv("OMNIGW_SECRET_KEY", KEY_A)
    gw = await make_gateway(toml)
    async with TestClient(TestServer(gw.web_app())) as client:
        zl = Zl(gw, client, zalo)
        conv_id = await customer_writes(zl)
        await eventually(lambda: _profile_done(zalo))
        zalo.send_script.append(zalo_error(-220, "Access token is expired or removed"))
        assert (await settled(zl, await reply(zl, conv_id, {"text": "Dạ"})))["status"] == "sent"
        assert zalo.token.call_count == 1  # refreshed: the new pair is sealed in the store
        hook = await add_webhook(client, receiver.url)
        await add_channel(client)
        ws, old_session = await open_visitor(client)
        await ws.close()
    await _stop(gw)

    # 2. The new key first, the old one after: everything reads, new seals use the new key.
    monkeypatch.setenv("OMNIGW_SECRET_KEY", f"{KEY_B}, {KEY_A}")
    caplog.set_level(logging.ERROR)
    gw = await make_gateway(toml)
    assert await _visitor(gw, old_session["token"]) == old_session["visitor_id"]
    async with TestClient(TestServer(gw.web_app())) as client:
        ws, new_session = await open_visitor(client)
        await ws.close()
        assert (await get_json(client, f"/v1/webhooks/{hook['id']}"))["enabled"] is True
    assert (await _state(gw, "shop"))["state"] == "CONNECTED"

    # rotate-secrets while it runs
    done = await asyncio.to_thread(_rotate, config, f"{KEY_B},{KEY_A}")
    assert done.returncode == 0, done.stderr
    report = done.stdout
    assert "channels" in report and "webhook secrets" in report and "tokens" in report, report
    assert "older keys can be removed" in report
    assert KEY_A not in report + done.stderr and KEY_B not in report + done.stderr
    assert await gw.store.channel_state.load(*KEY_CHECK) == [key_check(KEY_B.encode())]
    # nothing in the store opens with the old key any more
    old_box = SecretBox(Keyring([KEY_A.encode()]))
    for record in await gw.store.channels.all():
        with pytest.raises(Unsealable):
            old_box.open(record.sealed)
    for stored_hook in await gw.store.webhooks.all():
        with pytest.raises(Unsealable):
            old_box.open(stored_hook.sealed_secrets)
    again = await asyncio.to_thread(_rotate, config, f"{KEY_B},{KEY_A}")
    assert again.returncode == 0 and "nothing" in again.stdout, again.stdout
    await _stop(gw)
    assert "secret key" not in caplog.text

    # 3. The new key alone: channels, webhook secrets and Zalo tokens still read.
    monkeypatch.setenv("OMNIGW_SECRET_KEY", KEY_B)
    gw = await make_gateway(toml)
    async with TestClient(TestServer(gw.web_app())) as client:
        zl = Zl(gw, client, zalo)
        sent = await settled(zl, await reply(zl, conv_id, {"text": "Sau khi đổi khoá"}))
        assert sent["status"] == "sent", sent
    assert zalo.token.call_count == 1  # the stored pair was read: no refresh was needed
    assert zalo.send.calls.last.request.headers["access_token"] == "zalo-access-token-2"
    shop = await _state(gw, "shop")
    assert shop["state"] == "CONNECTED", shop
    async with TestClient(TestServer(gw.web_app())) as client:
        detail = await get_json(client, "/v1/channels/shop")
        assert detail["secrets"] == ["identity_secret"]
        assert (await get_json(client, f"/v1/webhooks/{hook['id']}"))["enabled"] is True
        ws, _ = await open_visitor(client, channel="shop")
        assert (await say(ws, "Chào shop", "c1"))["type"] == "ack"
        await ws.close()
        await eventually(lambda: _arrived(receiver), within=10)
    receiver.verified(hook["secret"])  # still the secret it was created with
    assert "secret key" not in caplog.text
    # the old key's visitor token is refused now; the new key's holds
    assert await _visitor(gw, old_session["token"]) != old_session["visitor_id"]
    assert await _visitor(gw, new_session["token"]) == new_session["visitor_id"]


async def _profile_done(zalo: ZaloFake) -> bool:
    return zalo.profile.call_count >= 1


async def _arrived(receiver: Receiver) -> bool:
    return bool(receiver.accepted())


async def test_rotate_secrets_names_what_no_key_opens(
    make_gateway: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value sealed under a key that is not listed is reported (exit 1), never lost,
    and the store's check keeps asking for that key."""
    data = tmp_path / "data"
    config = tmp_path / "omnigw.toml"
    config.write_text(f'[server]\ndata_dir = "{data}"\n' + WEBCHAT_AND_HOOKS, encoding="utf-8")
    monkeypatch.setenv("OMNIGW_SECRET_KEY", KEY_A)
    gw = await make_gateway(config.read_text(encoding="utf-8"))
    async with TestClient(TestServer(gw.web_app())) as client:
        await add_channel(client)
    [before] = await gw.store.channels.all()
    await _stop(gw)

    other = "a-third-key-nobody-listed-0123456789abcdef"
    done = await asyncio.to_thread(_rotate, config, f"{other},{KEY_B}")
    assert done.returncode == 1
    assert "channel shop" in done.stderr
    assert KEY_A not in done.stderr and other not in done.stdout + done.stderr
    gw = await make_gateway(config.read_text(encoding="utf-8"))  # KEY_A again: all there
    [after] = await gw.store.channels.all()
    assert after.sealed == before.sealed
    checks = await gw.store.channel_state.load(*KEY_CHECK)
    assert key_check(KEY_A.encode()) in checks


def test_rotate_secrets_without_a_key_says_how(tmp_path: Path) -> None:
    config = tmp_path / "omnigw.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGW_")}
    command = [sys.executable, "-m", "gateway", "rotate-secrets", "--config", str(config)]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "OMNIGW_SECRET_KEY" in done.stderr and "comma" in done.stderr
    assert not (tmp_path / "data" / "secret.key").exists()


def test_threading_ids_of_an_older_key_are_read_until_it_is_removed() -> None:
    purpose = "email-thread:mail"
    old = Keyring([KEY_A.encode()]).derive(purpose)
    both = Keyring([KEY_B.encode(), KEY_A.encode()]).derive(purpose)
    new = Keyring([KEY_B.encode()]).derive(purpose)
    conv, msg = "cv_01JH0000000000000000000000", "msg_01JH0000000000000000000000"
    made_old = token.message_id_for(old, conv, msg, "shop.example")
    made_now = token.message_id_for(both, conv, msg, "shop.example")
    assert made_now != made_old  # the newest key makes them
    assert token.read_message_id(both, made_old) == token.MessageToken(conv, msg)
    assert token.read_message_id(new, made_now) == token.MessageToken(conv, msg)
    assert token.read_message_id(new, made_old) is None
    plus = token.plus_address_for(old, "support@shop.example", conv)
    assert token.read_plus_address(both, plus, "support@shop.example") == conv
    assert token.read_plus_address(new, plus, "support@shop.example") is None


def test_several_keys_are_read_newest_first() -> None:
    from kernel.secrets import SecretKeyError, parse_keys

    keys = parse_keys(f" {KEY_B} ,\n{KEY_A}\n", "OMNIGW_SECRET_KEY")
    assert list(keys) == [KEY_B.encode(), KEY_A.encode()]
    assert KEY_A not in repr(keys) and KEY_B not in repr(keys)
    with pytest.raises(SecretKeyError, match="key 2 of 2 is 5 bytes") as refused:
        parse_keys(f"{KEY_B},short", "OMNIGW_SECRET_KEY")
    assert KEY_B not in str(refused.value)
    assert list(parse_keys(f"{KEY_B},,\n{KEY_A},", "x")) == list(keys)  # one separator
    with pytest.raises(SecretKeyError, match="is empty"):
        parse_keys(" ,\n", "OMNIGW_SECRET_KEY")
    sealed = SecretBox(Keyring([KEY_A.encode()])).seal(json.dumps({"x": "bí mật"}))
    box = SecretBox(keys)
    assert json.loads(box.open(sealed)) == {"x": "bí mật"}
    resealed = box.reseal(sealed)
    assert resealed is not None and box.reseal(resealed) is None
    assert json.loads(SecretBox(Keyring([KEY_B.encode()])).open(resealed)) == {"x": "bí mật"}
