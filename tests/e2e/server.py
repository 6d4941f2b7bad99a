"""Run the real gateway (`python -m gateway serve`) as a child process for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
START_TIMEOUT = 15.0
REPO_ROOT = Path(__file__).resolve().parents[2]

_LISTENING = re.compile(r"^omnigw \S+ listening on (http://127\.0\.0\.1:(\d+))$", re.MULTILINE)


@dataclass
class GatewayProcess:
    proc: subprocess.Popen[bytes]
    base_url: str
    port: int
    stdout_path: Path
    stderr_path: Path
    _files: list[IO[bytes]] = field(default_factory=list, repr=False)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/webchat/webchat/ws"

    def url(self, path: str) -> str:
        return self.base_url + path

    def stderr_text(self) -> str:
        return _tail(self.stderr_path)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, whatever is not on disk is lost."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._close_files()

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait for the graceful shutdown; SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_files()
        return self.proc.returncode

    def _close_files(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()


def start_gateway(
    data_dir: Path,
    log_dir: Path,
    *,
    admin_token: str = ADMIN_TOKEN,
    timeout: float = START_TIMEOUT,
    config: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> GatewayProcess:
    """Start ``omnigw serve`` on the embedded default config and wait until it listens.

    stdout and stderr go to files in ``log_dir`` (a pipe nobody reads would block the
    gateway once full); each start gets its own pair so a restart keeps both logs.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    n = len(list(log_dir.glob("gateway-*.stdout")))
    stdout_path = log_dir / f"gateway-{n}.stdout"
    stderr_path = log_dir / f"gateway-{n}.stderr"
    # The host's OMNIGW_* settings must not leak into a test's gateway.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIGW_")}
    env["OMNIGW_ADMIN_TOKEN"] = admin_token
    env.update(extra_env or {})
    out = stdout_path.open("wb")
    err = stderr_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            *(["--config", str(config)] if config is not None else []),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
    )
    files: list[IO[bytes]] = [out, err]
    deadline = time.monotonic() + timeout
    try:
        while True:
            match = _LISTENING.search(stdout_path.read_text(encoding="utf-8", errors="replace"))
            if match:
                return GatewayProcess(
                    proc, match.group(1), int(match.group(2)), stdout_path, stderr_path, files
                )
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the gateway exited with {proc.returncode} before listening; stderr:\n"
                    + _tail(stderr_path)
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the gateway did not print its listening line within {timeout}s; "
                    f"stdout:\n{_tail(stdout_path)}\nstderr:\n{_tail(stderr_path)}"
                )
            time.sleep(0.02)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for f in files:
            f.close()
        raise


async def astart_gateway(
    data_dir: Path, log_dir: Path, config: Path | None = None
) -> GatewayProcess:
    # A thread, so the test's event loop keeps serving its own sockets meanwhile.
    return await asyncio.to_thread(start_gateway, data_dir, log_dir, config=config)


class Gateways:
    """Every gateway a test started; ``close()`` kills those still running."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[GatewayProcess] = []

    async def start(self, data_dir: Path) -> GatewayProcess:
        gw = await astart_gateway(data_dir, self.log_dir)
        self.started.append(gw)
        return gw

    def close(self) -> None:
        for gw in self.started:
            with contextlib.suppress(Exception):
                gw.kill()


def _tail(path: Path, limit: int = 20_000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return text[-limit:]
