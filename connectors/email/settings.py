"""Options of an e-mail channel (design.md section 7: `address`, `imap`, `smtp`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.settings import ChannelSettings, Endpoints
from kernel.text import normalize_email

Security = Literal["tls", "starttls", "none"]
Port = Annotated[int, Field(ge=1, le=65535)]
# A host name or address: no spaces or control characters can reach a socket call.
Host = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:\[\]-]+$")]
# IMAP's autologout is at least 30 minutes (RFC 2177): IDLE is re-issued well before.
IDLE_REISSUE_MAX = 25 * 60

DEFAULT_PORTS = {
    "imap": {"tls": 993, "starttls": 143, "none": 143},
    "smtp": {"tls": 465, "starttls": 587, "none": 25},
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImapSettings(_Section):
    host: Host
    # Empty: 993 with tls, 143 otherwise.
    port: Port | None = None
    security: Security = "tls"
    username: Annotated[str, Field(min_length=1, max_length=320, pattern=r"^[^\s\"\\]+$")]
    # Empty with [oauth]: the login is XOAUTH2 / OAUTHBEARER with an access token.
    password: SecretStr | None = None
    folder: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\r\n\"\\]+$")] = "INBOX"
    # A PEM file of certificates to trust (a private CA); empty: the system's.
    ca_file: Path | None = None

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS["imap"][self.security]


class SmtpSettings(_Section):
    host: Host
    # Empty: 465 with tls, 587 with starttls, 25 without.
    port: Port | None = None
    security: Security = "starttls"
    # Both empty: the server takes mail without AUTH (e.g. a relay on the same host).
    username: Annotated[str, Field(min_length=1, max_length=320)] | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS["smtp"][self.security]


class OAuthSettings(_Section):
    """Logging in to IMAP and SMTP with OAuth 2.0 (Gmail, Microsoft 365): an access token
    got from the provider's token endpoint with a refresh token."""

    # Google: https://oauth2.googleapis.com/token; Microsoft 365:
    # https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token
    token_url: Annotated[str, Field(max_length=2000, pattern=r"^https?://[^\s]+$")]
    client_id: Annotated[str, Field(min_length=1, max_length=500)]
    client_secret: SecretStr | None = None
    refresh_token: SecretStr
    # Asked for on refresh when set (Microsoft 365:
    # "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send
    # offline_access").
    scope: Annotated[str, Field(max_length=2000)] | None = None
    # The SASL mechanism: XOAUTH2 (Gmail, Microsoft 365) or OAUTHBEARER (RFC 7628).
    mechanism: Literal["xoauth2", "oauthbearer"] = "xoauth2"
    # An access token is refreshed this long before it expires.
    refresh_ahead_seconds: Annotated[float, Field(ge=0, le=3000)] = 300.0


class EmailSettings(ChannelSettings):
    type: Literal["email"]
    name: str | None = None
    # The mailbox customers write to; replies come from it.
    address: str
    # Display name in From ("Shop support <support@shop.example>"); empty: `name`.
    from_name: Annotated[str, Field(max_length=200)] | None = None
    imap: ImapSettings
    smtp: SmtpSettings
    # OAuth 2.0 login for IMAP, and for SMTP when smtp has a username and no password.
    oauth: OAuthSettings | None = None
    # False: messages are read with BODY.PEEK and stay unread for humans using the mailbox.
    mark_seen: bool = False
    # Use IDLE when the server offers it (else poll every poll_interval_seconds).
    idle: bool = True
    # One IDLE command lasts at most this long before it is ended and re-issued.
    idle_reissue_seconds: Annotated[float, Field(ge=5, le=IDLE_REISSUE_MAX)] = 540.0
    # TCP keepalive probes on the IMAP connection while idle: keeps NAT mappings alive and
    # notices a silently dead peer long before the IDLE re-issue.
    keepalive_seconds: Annotated[float, Field(ge=5, le=600)] = 60.0
    poll_interval_seconds: Annotated[float, Field(ge=1, le=3600)] = 60.0
    # How long one IMAP or SMTP command may take.
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    # With no checkpoint yet (or after UIDVALIDITY changed): mail of the last N days is
    # read (duplicates are skipped by Message-ID); 0 = only mail that arrives from now on.
    initial_sync_days: Annotated[int, Field(ge=0, le=365)] = 2
    # Messages larger than this are not parsed; their headers are kept raw with a reason.
    max_message_bytes: Annotated[int, Field(ge=1024, le=200 * 1024 * 1024)] = 30 * 1024 * 1024
    # Messages with more MIME parts than this are not parsed (counted cheaply first: the
    # parser's time grows with the parts); they are kept raw with the reason.
    max_message_parts: Annotated[int, Field(ge=1, le=100_000)] = 500
    # Largest single attachment or inline image kept (the gateway's own limit also holds).
    max_attachment_bytes: Annotated[int, Field(ge=1, le=200 * 1024 * 1024)] = 25 * 1024 * 1024
    # Keep each received message byte for byte as an "original.eml" file part.
    keep_original: bool = True
    # Replies keep the customer's Cc (from their latest mail; never this mailbox).
    keep_cc: bool = True
    # Reply-To: support+<token>@domain, so a reply whose client dropped our Message-ID
    # still finds its conversation. Needs sub-addressing on the mail server.
    plus_address_reply_to: bool = False
    # Domain of our Message-IDs; empty: the domain of `address`.
    message_id_domain: (
        Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9-]+)*$")]
        | None
    ) = None
    # The subject of a reply in a conversation without one; unset: "Tin nhắn của bạn" or
    # "Your message", by the conversation's language (kernel.texts).
    default_subject: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        email = normalize_email(value)
        if email is None or any(c in value for c in '\r\n<>",;()[]\\ '):
            raise ValueError(f"{value!r} is not an e-mail address like support@shop.example")
        return email

    @field_validator("from_name", "name", "default_subject")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n\x00"):
            raise ValueError("must be a single line")
        return value

    @model_validator(mode="after")
    def _logins(self) -> EmailSettings:
        if self.oauth is None:
            if self.imap.password is None:
                raise ValueError("imap.password is required (or an [oauth] login)")
            if (self.smtp.username is None) != (self.smtp.password is None):
                raise ValueError("set both smtp username and password, or neither")
        elif self.imap.password is not None:
            raise ValueError("with [oauth], imap logs in with a token: leave imap.password out")
        elif self.smtp.password is not None and self.smtp.username is None:
            raise ValueError("smtp.password needs smtp.username")
        return self

    @property
    def smtp_oauth(self) -> bool:
        """Whether SMTP logs in with the OAuth access token."""
        return (
            self.oauth is not None
            and self.smtp.username is not None
            and (self.smtp.password is None)
        )

    @model_validator(mode="after")
    def _keepalive_below_reissue(self) -> EmailSettings:
        if self.keepalive_seconds >= self.idle_reissue_seconds:
            raise ValueError("keepalive_seconds must be shorter than idle_reissue_seconds")
        return self

    def credential_endpoints(self) -> Endpoints:
        # How the connection is secured and whom it trusts decide who can read the
        # password as much as the host does.
        # With OAuth, the servers get access tokens made from the refresh token: moving one
        # needs the refresh token again, as moving the token endpoint needs both secrets.
        imap, smtp, oauth = self.imap, self.smtp, self.oauth
        refresh = ("oauth.refresh_token",) if oauth is not None else ()
        found: Endpoints = {
            "imap": (
                (imap.host.lower(), imap.effective_port, imap.security, imap.ca_file),
                ("imap.password",) if imap.password is not None else refresh,
            ),
            "smtp": (
                (smtp.host.lower(), smtp.effective_port, smtp.security, smtp.ca_file),
                ("smtp.password",)
                if smtp.password is not None
                else (refresh if self.smtp_oauth else ()),
            ),
        }
        if oauth is not None:
            secrets = ("oauth.client_secret",) if oauth.client_secret is not None else ()
            found["oauth"] = (oauth.token_url, (*secrets, "oauth.refresh_token"))
        return found

    @property
    def domain(self) -> str:
        return self.message_id_domain or self.address.rpartition("@")[2]

    @property
    def display_name(self) -> str | None:
        return self.from_name or self.name
