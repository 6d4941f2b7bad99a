"""Logging in: the admin token's length, and failed logins throttled per client address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_settings
from gateway.app import Gateway


@pytest.mark.parametrize("token", ["x", "change-me", "a" * 31])
def test_a_short_admin_token_is_refused(tmp_path: Path, token: str) -> None:
    settings = load_settings(None, env={}, overrides={"server.data_dir": str(tmp_path)})
    with pytest.raises(ConfigError) as refused:
        Gateway(settings, admin_token=token)
    (problem,) = refused.value.problems
    assert problem.key == "OMNIGW_ADMIN_TOKEN"
    assert f"{len(token)} characters" in problem.message and "at least 32" in problem.message
    assert token not in str(refused.value)
    assert Gateway(settings, admin_token="a" * 32).admin_token == "a" * 32


def test_serve_refuses_a_short_admin_token_at_start(tmp_path: Path) -> None:
    env = {**os.environ, "OMNIGW_ADMIN_TOKEN": "hunter2-is-short"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "OMNIGW_ADMIN_TOKEN" in result.stderr and "at least 32" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "listening" not in result.stdout
