"""A real mail system for the e-mail tests: Dovecot (IMAP, IMAPS, STARTTLS, LMTP) and an
aiosmtpd SMTP relay into it, started once per session by tests/mail/start-mail.sh on free
ports in a world-traversable folder under /tmp, and stopped at the end."""

from __future__ import annotations

import contextlib
import email
import itertools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from connectors.email.client import ImapClient
from connectors.email.settings import ImapSettings

SCRIPTS = Path(__file__).resolve().parents[1] / "mail"
PASSWORD = "secret"
POOL = 40  # pairs of accounts made at start; more are added (slowly) if a run needs them
_counter = itertools.count(1)


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Mailboxes:
    """One test's own pair of accounts, so tests never see each other's mail."""

    support: str
    customer: str


@dataclass
class MailServer:
    dir: Path
    imap_port: int
    imaps_port: int
    smtp_port: int
    lmtp_port: int

    @property
    def cert(self) -> Path:
        return self.dir / "tls.crt"

    def add_user(self, address: str) -> None:
        with open(self.dir / "users", "a", encoding="utf-8") as f:
            f.write(f"{address}:{{PLAIN}}{PASSWORD}::::::\n")

    def mailboxes(self) -> Mailboxes:
        n = next(_counter)
        pair = Mailboxes(f"support-{n}@example.test", f"customer-{n}@example.org")
        if n > POOL:
            # Dovecot notices a changed user file by its mtime, in whole seconds.
            self.add_user(pair.support)
            self.add_user(pair.customer)
            time.sleep(1.1)
        return pair

    def channel_toml(
        self,
        support: str,
        extra: str = "",
        *,
        imap: dict[str, object] | None = None,
        smtp: dict[str, object] | None = None,
    ) -> str:
        """A [[channels]] entry for the gateway: plain IMAP and SMTP on loopback, with the
        given keys of `imap` and `smtp` replaced."""
        imap_keys = {
            "host": "127.0.0.1",
            "port": self.imap_port,
            "security": "none",
            "username": support,
            "password": PASSWORD,
            "folder": "INBOX",
            **(imap or {}),
        }
        smtp_keys = {
            "host": "127.0.0.1",
            "port": self.smtp_port,
            "security": "none",
            **(smtp or {}),
        }
        return f"""
[[channels]]
id = "mail"
type = "email"
address = "{support}"
from_name = "Cửa hàng Hoa Mai"
initial_sync_days = 0
idle_reissue_seconds = 30
keepalive_seconds = 10
{extra}

[channels.imap]
{_toml(imap_keys)}

[channels.smtp]
{_toml(smtp_keys)}
"""

    async def send(self, message: EmailMessage | bytes, sender: str, to: str) -> None:
        """Deliver as a customer's mail client would: SMTP to the relay."""
        await aiosmtplib.send(
            message,
            sender=sender,
            recipients=[to],
            hostname="127.0.0.1",
            port=self.smtp_port,
            start_tls=False,
            timeout=10,
        )

    @contextlib.asynccontextmanager
    async def session(self, user: str) -> AsyncIterator[ImapClient]:
        """A user's INBOX over plain IMAP; its socket is closed however the test goes on."""
        settings = ImapSettings(
            host="127.0.0.1",
            port=self.imap_port,
            security="none",
            username=user,
            password=PASSWORD,
        )
        client = ImapClient(settings, timeout=10, keepalive=10)
        try:
            await client.open()
            await client.select()
            yield client
        finally:
            await client.close()

    async def read_mailbox(self, user: str) -> list[EmailMessage]:
        """Every message in a user's INBOX, oldest first."""
        async with self.session(user) as client:
            raws = [await client.fetch(uid) for uid in await client.uids_after(0)]
        return [
            email.message_from_bytes(raw, policy=policy.default) for raw in raws if raw is not None
        ]


def _toml(values: dict[str, object]) -> str:
    return "\n".join(
        f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"'
        for k, v in values.items()
        if v is not None  # a key left out
    )


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


@contextlib.contextmanager
def running_mail_server(extra_env: dict[str, str] | None = None) -> Iterator[MailServer]:
    """Dovecot and the relay in a folder of their own, stopped and removed on exit."""
    # Not pytest's tmp_path: it is 0700, and Dovecot's own users must enter the folder.
    root = tempfile.mkdtemp(prefix="omnigw-mail-", dir="/tmp")
    os.chmod(root, 0o755)
    folder = Path(root) / "mail"
    server = None
    last_error: Exception | None = None
    for _ in range(3):  # a port picked as free may be taken before the daemons bind it
        imap, imaps, smtp, lmtp = _free_ports(4)
        env = {
            **os.environ,
            "PYTHON": sys.executable,
            "IMAP_PORT": str(imap),
            "IMAPS_PORT": str(imaps),
            "SMTP_PORT": str(smtp),
            "LMTP_PORT": str(lmtp),
            "MAIL_TLS": "1",
            "MAIL_SMTP_AUTH": "1",
            "MAIL_PASSWORD": PASSWORD,
            "MAIL_USERS": " ".join(
                f"support-{n}@example.test customer-{n}@example.org" for n in range(1, POOL + 1)
            ),
            **(extra_env or {}),
        }
        try:
            _run("start-mail.sh", str(folder), env=env)
        except RuntimeError as exc:
            last_error = exc
            _run("stop-mail.sh", str(folder))
            continue
        server = MailServer(folder, imap, imaps, smtp, lmtp)
        break
    if server is None:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"the test mail server did not start: {last_error}")
    try:
        yield server
    finally:
        _run("stop-mail.sh", str(folder))
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mail_server() -> Iterator[MailServer]:
    with running_mail_server() as server:
        yield server


@pytest.fixture
def mailboxes(mail_server: MailServer) -> Mailboxes:
    return mail_server.mailboxes()
