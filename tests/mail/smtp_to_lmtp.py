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
import base64
import json
import signal
import smtplib
import ssl
import time
import urllib.parse
import urllib.request
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


class OAuthRelay(LMTPRelay):
    """Also takes AUTH XOAUTH2 and OAUTHBEARER, checking the bearer token at an OAuth
    introspection endpoint (RFC 7662, POST token=...) as Dovecot's oauth2 passdb does."""

    def __init__(self, *args: Any, introspection: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.introspection = introspection

    def _user_of(self, token: str) -> str | None:
        body = urllib.parse.urlencode({"token": token}).encode()
        try:
            with urllib.request.urlopen(self.introspection, body, timeout=5) as resp:
                found = json.loads(resp.read())
        except (OSError, ValueError):
            return None
        return str(found.get("username")) if found.get("active") is True else None

    async def _check(self, server: Any, user: str | None, token: str | None) -> AuthResult:
        if user and token and await asyncio.to_thread(self._user_of, token) == user:
            return AuthResult(success=True, auth_data=user)
        # RFC 7628 3.2.2: the error as a challenge; the client answers it with an empty line.
        await server.challenge_auth(json.dumps({"status": "invalid_token"}))
        return AuthResult(success=False, handled=False)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        fields = _sasl_fields(args)
        user = fields.get("user")
        bearer = fields.get("auth", "")
        return await self._check(server, user, bearer.removeprefix("Bearer ") or None)

    async def auth_OAUTHBEARER(self, server: Any, args: list[str]) -> AuthResult:
        fields = _sasl_fields(args)
        gs2 = fields.get("", "")  # "n,a=user," before the first \x01
        user = gs2.split("a=", 1)[1].split(",", 1)[0] if "a=" in gs2 else None
        user = user.replace("=2C", ",").replace("=3D", "=") if user else None
        bearer = fields.get("auth", "")
        return await self._check(server, user, bearer.removeprefix("Bearer ") or None)


def _sasl_fields(args: list[str]) -> dict[str, str]:
    """key=value fields of an initial response split by \x01 ("" holds a GS2 header)."""
    if len(args) < 2:
        return {}
    try:
        text = base64.b64decode(args[1], validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return {}
    out: dict[str, str] = {}
    for item in text.split("\x01"):
        if item.startswith(("n,", "y,", "p=")):
            out[""] = item
        elif "=" in item:
            key, _, value = item.partition("=")
            out[key] = value
    return out


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
    ap.add_argument("--oauth-introspection")
    a = ap.parse_args()
    tls = None
    if a.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.tls_cert, a.tls_key)
    auth: dict[str, Any] = {}
    if a.users:
        auth = {"authenticator": Users(a.users), "auth_require_tls": False}
    relay = (
        OAuthRelay(*a.lmtp, spool=a.spool, introspection=a.oauth_introspection)
        if a.oauth_introspection
        else LMTPRelay(*a.lmtp, spool=a.spool)
    )
    ctl = Controller(
        relay,
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
