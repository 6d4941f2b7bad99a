from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from config import ConfigError, load_settings

GOOD = """
[server]
host = "0.0.0.0"
port = 9000
data_dir = "/var/lib/omnigw"

[[channels]]
id = "shop-chat"
type = "webchat"
allowed_origins = ["https://shop.example"]
identity_secret = "${WEBCHAT_SECRET}"

[[agents]]
id = "lan"
name = "Lan"
skills = { billing = 3, vietnamese = 5 }
languages = ["vi", "en"]
capacity = { webchat = 3, total = 8 }
"""

BAD = """
[server]
port = "eighty"
prot = 1

[[channels]]
id = "webchat"
type = "webchat"
allowed_origins = ["shop.example"]
identity_secret = "${MISSING_SECRET}"

[[channels]]
id = "fb"
type = "telegram"

[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
skills = { billing = 30 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "omnigw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD), env={"WEBCHAT_SECRET": "abc"})
    assert s.server.port == 9000
    assert s.channels[0].identity_secret is not None
    assert s.channels[0].identity_secret.get_secret_value() == "abc"
    assert "abc" not in repr(s)
    assert "abc" not in str(s.model_dump())
    assert s.agents[0].capacity == {"webchat": 3, "total": 8}
    assert s.store_url == "sqlite:////var/lib/omnigw/omnigw.db"


def test_every_problem_is_listed_with_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, BAD), env={})
    keys = {p.key for p in exc.value.problems}
    assert keys == {
        "server.port",
        "server.prot",
        "channels[webchat].allowed_origins",
        "channels[webchat].identity_secret",
        "channels[webchat].id",
        "channels[fb].type",
        "agents[lan].skills.billing",
    }
    messages = " | ".join(str(p) for p in exc.value.problems)
    assert "MISSING_SECRET is not set" in messages
    assert "'telegram' is not available" in messages
    assert "unknown key" in messages


def test_no_file_is_the_embedded_default() -> None:
    s = load_settings(None, env={})
    assert [(c.id, c.type) for c in s.channels] == [("webchat", "webchat")]
    assert [a.id for a in s.agents] == ["demo"]
    assert s.agents[0].presence == "online"
    assert s.store_url == "sqlite:///omnigw-data/omnigw.db"


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        "WEBCHAT_SECRET": "abc",
        "OMNIGW_SERVER_PORT": "9100",
        "OMNIGW_STORE__URL": "sqlite:///elsewhere.db",
        "OMNIGW_CHANNELS__SHOP_CHAT__ALLOWED_ORIGINS": '["https://a.example", "https://b.example"]',
        "OMNIGW_AGENTS__LAN__CAPACITY": "{ total = 2 }",
        "OMNIGW_ADMIN_TOKEN": "not a config key",
    }
    s = load_settings(write(tmp_path, GOOD), env=env, overrides={"server.port": 9200})
    assert s.server.port == 9200  # command-line flags win over the environment
    assert s.store.url == "sqlite:///elsewhere.db"
    assert s.channels[0].allowed_origins == ["https://a.example", "https://b.example"]
    assert s.agents[0].capacity == {"total": 2}
    s2 = load_settings(write(tmp_path, GOOD), env=env)
    assert s2.server.port == 9100


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("OMNIGW_SERVR_PORT", "OMNIGW_SERVR_PORT"),
        ("OMNIGW_CHANNELS__NOPE__TYPE", "OMNIGW_CHANNELS__NOPE__TYPE"),
        ("OMNIGW_CHANNELS__X", "OMNIGW_CHANNELS__X"),
    ],
)
def test_bad_environment_names_are_reported(tmp_path: Path, name: str, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(write(tmp_path, GOOD), env={"WEBCHAT_SECRET": "x", name: "1"})
    assert [p.key for p in exc.value.problems] == [key]


def test_unsupported_store_is_a_config_problem() -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(None, env={"OMNIGW_STORE_URL": "mysql://db/x"})
    assert [p.key for p in exc.value.problems] == ["store.url"]


def test_env_default_syntax(tmp_path: Path) -> None:
    s = load_settings(
        write(tmp_path, GOOD.replace("${WEBCHAT_SECRET}", "${WEBCHAT_SECRET:-dflt}")), env={}
    )
    assert s.channels[0].identity_secret is not None
    assert s.channels[0].identity_secret.get_secret_value() == "dflt"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[server\nport = 1", "not valid TOML"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_unreadable_files(tmp_path: Path, content: str | bytes, fragment: str) -> None:
    path = tmp_path / "x.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigError) as exc:
        load_settings(path, env={})
    assert fragment in str(exc.value)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_check_config_command(tmp_path: Path) -> None:
    bad = run_cli("check-config", str(write(tmp_path, BAD)))
    assert bad.returncode == 1
    assert "7 problem(s)" in bad.stderr
    assert "channels[fb].type" in bad.stderr
    assert "server.prot" in bad.stderr
    good_path = tmp_path / "good.toml"
    good_path.write_text(GOOD.replace("${WEBCHAT_SECRET}", "literal"), encoding="utf-8")
    good = run_cli("check-config", str(good_path))
    assert good.returncode == 0, good.stderr
    assert "OK (1 channel(s), 1 agent(s))" in good.stdout
    missing = run_cli("check-config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    result = run_cli("serve", "--config", str(write(tmp_path, BAD)))
    assert result.returncode == 2
    assert "server.port" in result.stderr


def test_scale_out_settings(tmp_path: Path) -> None:
    s = load_settings(
        write(
            tmp_path,
            '[store]\nurl = "postgresql://omnigw:${PGPASS}@db.internal/omnigw"\n'
            '[redis]\nurl = "redis://127.0.0.1:6379/3"\n',
        ),
        env={"PGPASS": "pw", "OMNIGW_STORE_POOL_SIZE": "20"},
    )
    assert s.store_url == "postgresql://omnigw:pw@db.internal/omnigw"
    assert s.store.shared and s.store.pool_size == 20 and s.store.lease_seconds == 10.0
    assert s.redis.url == "redis://127.0.0.1:6379/3"
    assert load_settings(None, env={"OMNIGW_REDIS_URL": ""}).redis.url == ""
    for key, value in [
        ("OMNIGW_REDIS_URL", "http://127.0.0.1:6379"),
        ("OMNIGW_STORE_POOL_SIZE", "0"),
        ("OMNIGW_STORE_LEASE_SECONDS", "0.5"),
    ]:
        with pytest.raises(ConfigError) as exc:
            load_settings(None, env={key: value})
        assert [p.key for p in exc.value.problems] == [key[7:].lower().replace("_", ".", 1)]


def test_channel_types_come_from_the_registry() -> None:
    from connectors.registry import CHANNELS
    from kernel.models import ChannelType

    assert set(CHANNELS) <= set(ChannelType)
    for channel_type, kind in CHANNELS.items():
        # each settings model answers to its own type name, and only to it
        assert kind.settings.model_fields["type"].annotation == Literal[channel_type.value]
    with pytest.raises(ConfigError) as exc:
        load_settings(None, env={"OMNIGW_CHANNELS__WEBCHAT__TYPE": "telegram"})
    [problem] = exc.value.problems
    assert problem.message.endswith("(available: " + ", ".join(t.value for t in CHANNELS) + ")")


def test_retention_ages(tmp_path: Path) -> None:
    default = load_settings(None, env={}).retention
    assert (default.raw_events, default.delivery_logs) == (30 * 86400, 30 * 86400)
    assert (default.attachments, default.resolved_conversations) == (0, 0)
    assert default.compact_after_erasure and default.sweep_interval == 3600
    s = load_settings(
        write(
            tmp_path,
            '[retention]\nraw_events = 0\nattachments = "12w"\n'
            'resolved_conversations = "365d"\nsweep_interval = "15m"\n',
        ),
        env={"OMNIGW_RETENTION__DELIVERY_LOGS": "7d"},
    ).retention
    assert (s.raw_events, s.delivery_logs, s.attachments) == (0, 7 * 86400, 84 * 86400)
    assert s.resolved_conversations == 365 * 86400 and s.sweep_interval == 900
    with pytest.raises(ConfigError) as exc:
        load_settings(
            write(tmp_path, '[retention]\nattachments = "10m"\nraw_events = "soon"\nkeep = 1\n'),
            env={},
        )
    assert {p.key for p in exc.value.problems} == {
        "retention.attachments",
        "retention.raw_events",
        "retention.keep",
    }
    assert "at least an hour" in " | ".join(str(p) for p in exc.value.problems)


BOTS = """
[[bots]]
id = "triage"
url = "https://bots.example/triage"
secret = "${TRIAGE_SECRET}"
channels = ["webchat"]

[[bots]]
id = "triage"
url = "ftp://bots.example/again"
secret = "not-a-whsec"
"""


def test_bots_are_checked_and_overridden_by_id(tmp_path: Path) -> None:
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, BOTS), env={"TRIAGE_SECRET": secret})
    keys = {p.key for p in err.value.problems}
    assert "bots[triage].id" in keys  # the same id twice
    assert keys == {"bots[triage].id", "bots[triage].url", "bots[triage].secret"}
    good = BOTS.split("[[bots]]")[1]
    s = load_settings(
        write(tmp_path, "[[bots]]" + good),
        env={"TRIAGE_SECRET": secret, "OMNIGW_BOTS__TRIAGE__TIMEOUT": "5s"},
    )
    (bot,) = s.bots
    assert (bot.id, bot.timeout, bot.channels) == ("triage", 5.0, ["webchat"])
    assert "gặp nhân viên" in bot.handover_phrases
    assert secret not in repr(s)


def test_surveys_and_stats_settings(tmp_path: Path) -> None:
    good = load_settings(
        write(
            tmp_path,
            '[surveys]\nenabled = true\ndelay = "5m"\nnps = true\nexpire_after = "3d"\n'
            '[stats]\nfcr_window = "48h"\n',
        ),
        env={},
    )
    assert (good.surveys.delay, good.surveys.expire_after) == (300.0, 3 * 86400.0)
    assert good.surveys.nps and not good.surveys.ces
    assert good.stats.fcr_window == 48 * 3600.0
    assert load_settings(None, env={}).stats.fcr_window == 72 * 3600.0
    with pytest.raises(ConfigError) as exc:
        load_settings(
            write(
                tmp_path,
                '[surveys]\ndelay = "soon"\ncsat = true\nsweep_interval = 0\n'
                "[stats]\nfcr_window = 0\n",
            ),
            env={},
        )
    assert {p.key for p in exc.value.problems} == {
        "surveys.delay",
        "surveys.csat",
        "surveys.sweep_interval",
        "stats.fcr_window",
    }
