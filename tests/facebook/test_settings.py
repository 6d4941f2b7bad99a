"""The channel's settings as the config file gives them (design.md section 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings
from connectors.facebook.settings import FacebookSettings
from tests.facebook.helpers import APP_SECRET, TOKEN, TOKEN2, VERIFY_TOKEN, config

DESIGN_EXAMPLE = """
[[channels]]
id = "fb-shop"
type = "facebook"
app_secret = "${FB_APP_SECRET}"
verify_token = "${FB_VERIFY_TOKEN}"
pages = [{ id = "104000000000001", access_token = "${FB_PAGE_TOKEN}" }]
human_agent_tag = true
api_base = "https://graph.facebook.com/v25.0"
"""
ENV = {"FB_APP_SECRET": APP_SECRET, "FB_VERIFY_TOKEN": VERIFY_TOKEN, "FB_PAGE_TOKEN": TOKEN}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "omnigw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_design_example_loads(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, DESIGN_EXAMPLE), env=ENV)
    (channel,) = s.channels
    assert isinstance(channel, FacebookSettings)
    assert channel.pages[0].access_token.get_secret_value() == TOKEN
    assert channel.human_agent_tag is True
    assert channel.app_id is None
    assert (channel.max_body_bytes, channel.profile_refresh_hours) == (4 * 1024 * 1024, 24.0)
    for secret in (APP_SECRET, VERIFY_TOKEN, TOKEN):
        assert secret not in repr(s)
        assert secret not in str(s.model_dump())
        assert secret not in s.model_dump_json()


def test_numeric_ids_and_environment_overrides(tmp_path: Path) -> None:
    text = DESIGN_EXAMPLE.replace('id = "104000000000001"', "id = 104000000000001")
    env = {**ENV, "OMNIGW_CHANNELS__FB_SHOP__APP_ID": "555000000000001"}
    (channel,) = load_settings(write(tmp_path, text), env=env).channels
    assert isinstance(channel, FacebookSettings)
    assert channel.pages[0].id == "104000000000001"
    assert channel.app_id == "555000000000001"


def test_two_pages(tmp_path: Path) -> None:
    (channel,) = load_settings(write(tmp_path, config()), env={}).channels
    assert isinstance(channel, FacebookSettings)
    assert [p.access_token.get_secret_value() for p in channel.pages] == [TOKEN, TOKEN2]
    assert channel.page("104000000000002") is channel.pages[1]
    assert channel.page("1") is None


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (('pages = [{ id = "104000000000001", access_token = "${FB_PAGE_TOKEN}" }]', "pages = []"),
         "channels[fb-shop].pages"),
        (('pages = [{ id = "104000000000001", access_token = "${FB_PAGE_TOKEN}" }]', ""),
         "channels[fb-shop].pages"),
        (('app_secret = "${FB_APP_SECRET}"', 'app_secret = ""'), "channels[fb-shop].app_secret"),
        (('verify_token = "${FB_VERIFY_TOKEN}"', ""), "channels[fb-shop].verify_token"),
        (('id = "104000000000001"', 'id = "my-page"'), "channels[fb-shop].pages[my-page].id"),
        (('api_base = "https://graph.facebook.com/v25.0"', 'api_base = "graph.facebook.com"'),
         "channels[fb-shop].api_base"),
        (("human_agent_tag = true", "human_agent_tags = true"),
         "channels[fb-shop].human_agent_tags"),
        (('pages = [{ id = "104000000000001", access_token = "${FB_PAGE_TOKEN}" }]',
          'pages = [{ id = "1", access_token = "a" }, { id = "1", access_token = "b" }]'),
         "channels[fb-shop].pages"),
    ],
)  # fmt: skip
def test_bad_settings_name_their_key(tmp_path: Path, change: tuple[str, str], key: str) -> None:
    old, new = change
    assert old in DESIGN_EXAMPLE
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, DESIGN_EXAMPLE.replace(old, new)), env=ENV)
    assert key in [p.key for p in exc.value.problems], exc.value.problems
    assert TOKEN not in str(exc.value) and APP_SECRET not in str(exc.value)
