"""A small real SMTP server for tests: aiosmtpd on loopback that hands every accepted
message to Dovecot over LMTP (so it lands in a real IMAP mailbox) and keeps a copy in a
spool folder. STARTTLS is offered when --tls-cert/--tls-key are given (never required).
With --users FILE (Dovecot passwd-file lines "user:{PLAIN}password::..."), AUTH is
offered and wrong credentials are refused with 535; mail without AUTH is still taken.

  python smtp_to_lmtp.py --listen 127.0.0.1:10025 --lmtp 127.0.0.1:10024 \
      [--spool DIR] [--tls-cert C --tls-key K] [--users FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import smtplib
import ssl
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class LMTPRelay:
    def __init__(self, lmtp_host: str, lmtp_port: int, spool: str | None = None) -> None:
        self.lmtp = (lmtp_host, lmtp_port)
        self.spool = Path(spool) if spool else None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _deliver(self, envelope: Any) -> dict[str, Any]:
        # One LMTP transaction per recipient: LMTP answers DATA once per recipient, and
        # smtplib reads only the first answer (the next command would then read the rest).
        refused: dict[str, Any] = {}
        for rcpt in envelope.rcpt_tos:
            with smtplib.LMTP(*self.lmtp) as lmtp:
                try:
                    lmtp.sendmail(envelope.mail_from, [rcpt], envelope.original_content)
                except smtplib.SMTPRecipientsRefused as e:
                    refused.update(e.recipients)
        if refused and len(refused) == len(envelope.rcpt_tos):
            raise smtplib.SMTPRecipientsRefused(refused)
        return refused

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.spool:
            self.spool.mkdir(parents=True, exist_ok=True)
            (self.spool / f"{time.time_ns()}.eml").write_bytes(envelope.original_content)
        try:
            refused = await asyncio.to_thread(self._deliver, envelope)
        except smtplib.SMTPRecipientsRefused as e:
            return f"550 5.1.1 LMTP refused {sorted(e.recipients)}"
        except (OSError, smtplib.SMTPException) as e:
            return f"451 4.3.0 LMTP delivery failed: {e}"
        return "250 OK" if not refused else f"250 OK (LMTP refused {sorted(refused)})"


class Users:
    """Checks AUTH PLAIN/LOGIN against a Dovecot passwd-file (re-read on every login)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        for line in self.path.read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == user and rest.split(":", 1)[0] == "{PLAIN}" + password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def hostport(s: str) -> tuple[str, int]:
    h, p = s.rsplit(":", 1)
    return h, int(p)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:10025", type=hostport)
    ap.add_argument("--lmtp", default="127.0.0.1:10024", type=hostport)
    ap.add_argument("--spool")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--users")
    a = ap.parse_args()
    tls = None
    if a.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.tls_cert, a.tls_key)
    auth: dict[str, Any] = {}
    if a.users:
        auth = {"authenticator": Users(a.users), "auth_require_tls": False}
    ctl = Controller(
        LMTPRelay(*a.lmtp, spool=a.spool),
        hostname=a.listen[0],
        port=a.listen[1],
        tls_context=tls,
        require_starttls=False,
        server_hostname="mail.test",
        **auth,
    )
    ctl.start()  # runs the SMTP server in its own thread; returns once it is listening
    print(
        f"SMTP listening on {a.listen[0]}:{a.listen[1]} -> LMTP {a.lmtp[0]}:{a.lmtp[1]}", flush=True
    )
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    ctl.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
