"""A key too short to protect anything is refused at start, with a message that names
where it came from: an empty key file, an empty or short OMNIGW_SECRET_KEY."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import load_settings
from gateway.app import Gateway
from kernel.secrets import SecretKeyError
from tests.conftest import ADMIN
from tests.e2e.server import REPO_ROOT


def _serve(data_dir: Path, env_key: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``omnigw serve``; a gateway that starts is stopped by the timeout (a failure)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGW_")}
    if env_key is not None:
        env["OMNIGW_SECRET_KEY"] = env_key
    command = [sys.executable, "-m", "gateway", "serve", "--data-dir", str(data_dir)]
    command += ["--port", "0", "--host", "127.0.0.1"]
    try:
        return subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("omnigw serve started with a key it should have refused")


@pytest.mark.parametrize(
    ("env_key", "named"),
    [
        ("", "OMNIGW_SECRET_KEY"),
        ("   ", "OMNIGW_SECRET_KEY"),
        ("short-key", "OMNIGW_SECRET_KEY"),
        ("x" * 31, "OMNIGW_SECRET_KEY"),
        ("a-good-key-of-forty-bytes-0123456789abcd, tooshort-old-key", "OMNIGW_SECRET_KEY"),
    ],
)
def test_serve_refuses_a_short_or_empty_variable(tmp_path: Path, env_key: str, named: str) -> None:
    done = _serve(tmp_path / "data", env_key)
    assert done.returncode != 0
    assert named in done.stderr
    assert "32 bytes" in done.stderr
    assert "Traceback" not in done.stderr
    if env_key.strip():
        assert env_key.split(",")[-1] not in done.stderr.replace(named, "")  # never the key


def test_serve_refuses_an_empty_key_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret.key").write_text("\n")
    done = _serve(data, None)
    assert done.returncode != 0
    assert "secret.key" in done.stderr and "32 bytes" in done.stderr
    assert "Traceback" not in done.stderr
    assert (data / "secret.key").read_text() == "\n"  # left for the operator to fix


async def test_the_gateway_refuses_a_short_key_file_before_using_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret.key").write_text("tiny")
    settings = load_settings(None, env={}, overrides={"server.data_dir": str(data)})
    gw = Gateway(settings, admin_token=ADMIN)
    with pytest.raises(SecretKeyError, match=r"secret\.key.*32 bytes"):
        await gw.start()
    await gw.stop()


def test_a_good_key_is_accepted(tmp_path: Path) -> None:
    """The refusal is about length: a 32-byte key starts (the process is then stopped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGW_")}
    env["OMNIGW_SECRET_KEY"] = "k" * 32
    command = [sys.executable, "-m", "gateway", "serve", "--data-dir", str(tmp_path / "d")]
    proc = subprocess.Popen(
        [*command, "--port", "0", "--host", "127.0.0.1"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "listening on" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_check_config_lists_a_refused_key(tmp_path: Path) -> None:
    config = tmp_path / "omnigw.toml"
    config.write_text('[[channels]]\nid = "webchat"\ntype = "webchat"\n', encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGW_")}
    command = [sys.executable, "-m", "gateway", "check-config", str(config)]
    ok = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    env["OMNIGW_SECRET_KEY"] = "too-short"
    bad = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "OMNIGW_SECRET_KEY" in bad.stderr and "32 bytes" in bad.stderr
    assert "too-short" not in bad.stderr
