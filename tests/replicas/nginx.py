"""A throw-away nginx (Debian's package) in front of replicas, running deploy/nginx.conf.

    async with Nginx.started(["127.0.0.1:41001", "127.0.0.1:41002"], tmp_path / "nginx") as lb:
        lb.url("/v1/events"); lb.ws_url

deploy/nginx.conf is used as it stands, with only its upstream servers and its `listen`
replaced; a main file of ours around it sets what a system nginx keeps under /run and
/var (pid file, logs, temp paths: here all in a folder under /tmp). nginx runs in the
foreground (`daemon off`) on a free loopback port, as user nobody when the tests run as
root. scripts/test.sh installs the `nginx` package.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_CONF = REPO_ROOT / "deploy" / "nginx.conf"
NGINX = Path("/usr/sbin/nginx")
START_TIMEOUT = 15.0

_UPSTREAM = re.compile(r"^upstream omnigw \{\n(?P<body>.*?)^\}", re.MULTILINE | re.DOTALL)
_UPSTREAM_SERVER = re.compile(r"^\s*server \S+;\n", re.MULTILINE)
_LISTEN = re.compile(r"^(?P<indent>\s*)listen 80;$", re.MULTILINE)

# What a system nginx keeps under /run and /var; gzip on for every type the gateway serves
# (Debian's nginx.conf has `gzip on` too): the events location must turn it off.
MAIN_CONF = """\
# A throw-away nginx around deploy/nginx.conf, written by tests/replicas/nginx.py.
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
worker_processes 1;
events {{
    worker_connections 512;
}}
http {{
    client_body_temp_path {dir}/temp/body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    # $uri, not $request_uri: query strings can carry visitor tokens.
    log_format upstreams '$request_method $uri $status upstream=$upstream_addr';
    access_log {dir}/access.log upstreams;
    # The gateway sends X-Accel-Buffering: no; ignored, so deploy/nginx.conf alone must
    # keep the event stream from being held.
    proxy_ignore_headers X-Accel-Buffering;
    gzip on;
    gzip_min_length 1;
    gzip_types text/event-stream application/json application/javascript text/plain;
    include {dir}/omnigw.conf;
}}
"""


def nginx_path() -> str:
    if not NGINX.exists():
        pytest.fail(
            f"{NGINX} is missing: install Debian's nginx (apt-get install nginx; "
            "scripts/test.sh does it)"
        )
    return str(NGINX)


def render_site(template: str, upstreams: Sequence[str], port: int) -> str:
    """deploy/nginx.conf with these upstream servers, listening on 127.0.0.1:port."""
    block = _UPSTREAM.search(template)
    if block is None or len(_UPSTREAM.findall(template)) != 1:
        raise ValueError("deploy/nginx.conf must have one `upstream omnigw {` block")
    body = block.group("body")
    first = _UPSTREAM_SERVER.search(body)
    if first is None:
        raise ValueError("the upstream block of deploy/nginx.conf has no `server host:port;`")
    servers = "".join(f"    server {address};\n" for address in upstreams)
    body = body[: first.start()] + servers + _UPSTREAM_SERVER.sub("", body[first.start() :])
    site = template[: block.start("body")] + body + template[block.end("body") :]
    site, listens = _LISTEN.subn(rf"\g<indent>listen 127.0.0.1:{port};", site)
    if listens != 1:
        raise ValueError("deploy/nginx.conf must have exactly one `listen 80;`")
    return site


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _owner() -> tuple[int, int] | None:
    """uid and gid to run as: nobody when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    port: int
    dir: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/webchat/webchat/ws"

    def url(self, path: str) -> str:
        return self.base_url + path

    def error_log(self) -> str:
        return _read(self.dir / "error.log") + _read(self.dir / "stderr.log")

    def access_log(self) -> str:
        return _read(self.dir / "access.log")

    @classmethod
    @contextlib.asynccontextmanager
    async def started(cls, upstreams: Sequence[str], log_dir: Path) -> AsyncIterator[Nginx]:
        """Start nginx in front of ``upstreams`` (host:port); at the end stop it, keep its
        config and logs in ``log_dir`` and remove its folder."""
        binary = nginx_path()
        # Not pytest's tmp_path: it is 0700 and owned by root, and nginx may run as nobody.
        root = Path(tempfile.mkdtemp(prefix="omnigw-nginx-", dir="/tmp"))
        owner = _owner()
        nginx: Nginx | None = None
        try:
            os.chmod(root, 0o755)
            (root / "temp").mkdir()  # nginx makes only the last part of a temp path
            if owner is not None:
                os.chown(root, *owner)
                os.chown(root / "temp", *owner)
            (root / "nginx.conf").write_text(MAIN_CONF.format(dir=root), encoding="utf-8")
            template = DEPLOY_CONF.read_text(encoding="utf-8")
            problem = ""
            for _ in range(3):  # a port picked as free may be taken before nginx binds it
                port = _free_port()
                (root / "omnigw.conf").write_text(
                    render_site(template, upstreams, port), encoding="utf-8"
                )
                candidate = cls(_spawn(binary, root, owner), port, root)
                problem = await candidate._wait_ready()
                if not problem:
                    nginx = candidate
                    break
                await asyncio.to_thread(candidate._stop)
                if "Address already in use" not in problem:
                    break
            if nginx is None:
                raise RuntimeError(f"nginx did not start: {problem}")
            yield nginx
        finally:
            if nginx is not None:
                await asyncio.to_thread(nginx._stop)
            _keep_and_remove(root, log_dir)

    async def _wait_ready(self) -> str:
        """'' once nginx answers /healthz from a replica, else what went wrong."""
        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return f"exited with {self.proc.returncode}: {self.error_log()[-2000:]}"
                try:
                    async with http.get(self.url("/healthz")) as resp:
                        if resp.status == 200 and resp.headers.get("Server", "").startswith(
                            "nginx"
                        ):
                            return ""
                        last = f"GET /healthz answered {resp.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = repr(exc)
                await asyncio.sleep(0.05)
        return f"not ready within {START_TIMEOUT}s ({last}): {self.error_log()[-2000:]}"

    def _stop(self) -> None:
        """SIGTERM (nginx's fast shutdown: open connections are closed), SIGKILL to its
        process group if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def _spawn(binary: str, root: Path, owner: tuple[int, int] | None) -> subprocess.Popen[bytes]:
    with (root / "stderr.log").open("ab") as err:
        return subprocess.Popen(
            [
                binary,
                "-p",
                f"{root}/",
                "-c",
                str(root / "nginx.conf"),
                "-e",
                str(root / "error.log"),
                "-g",
                "daemon off;",
            ],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            # Its own process group: a hung master and its workers are killed together.
            start_new_session=True,
            user=owner[0] if owner else None,
            group=owner[1] if owner else None,
            extra_groups=[] if owner else None,
        )


def _keep_and_remove(root: Path, log_dir: Path) -> None:
    with contextlib.suppress(OSError):
        log_dir.mkdir(parents=True, exist_ok=True)
        for name in ("nginx.conf", "omnigw.conf", "error.log", "access.log", "stderr.log"):
            if (root / name).exists():
                shutil.copy(root / name, log_dir / name)
    shutil.rmtree(root, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
