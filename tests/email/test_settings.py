"""The e-mail channel's settings: the keys of design.md section 7, defaults, bad values
reported by key, and passwords that never print."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings
from connectors.email.settings import EmailSettings

SKETCH = """
[[channels]]
id = "support-mail"
type = "email"
address = "Support@Shop.example"
imap = { host = "imap.shop.example", port = 993, security = "tls", username = "support@shop.example", password = "${IMAP_PASSWORD}", folder = "INBOX" }
smtp = { host = "smtp.shop.example", port = 587, security = "starttls", username = "support@shop.example", password = "${SMTP_PASSWORD}" }
"""  # noqa: E501 (the sketch of design.md, as users write it)


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> EmailSettings:
    path = tmp_path / "omnigw.toml"
    path.write_text(text, encoding="utf-8")
    settings = load_settings(
        path, env=env if env is not None else {"IMAP_PASSWORD": "i-pw", "SMTP_PASSWORD": "s-pw"}
    )
    [channel] = settings.channels
    assert isinstance(channel, EmailSettings)
    return channel


def test_the_design_sketch_loads_with_safe_defaults(tmp_path: Path) -> None:
    ch = load(tmp_path, SKETCH)
    assert ch.address == "support@shop.example"
    assert ch.imap.password.get_secret_value() == "i-pw"
    assert ch.smtp.password is not None and ch.smtp.password.get_secret_value() == "s-pw"
    assert not ch.mark_seen  # BODY.PEEK: the mailbox stays as humans left it
    assert ch.idle and ch.idle_reissue_seconds <= 25 * 60
    assert ch.keepalive_seconds < ch.idle_reissue_seconds
    assert ch.domain == "shop.example"
    for secret in ("i-pw", "s-pw"):
        assert secret not in repr(ch) and secret not in str(ch.model_dump())


def test_default_ports_follow_security() -> None:
    base = {"host": "h", "username": "u", "password": "p"}
    ch = EmailSettings.model_validate(
        {
            "id": "m",
            "type": "email",
            "address": "a@b.example",
            "imap": {**base, "security": "starttls"},
            "smtp": {"host": "h", "security": "tls"},
        }
    )
    assert (ch.imap.effective_port, ch.smtp.effective_port) == (143, 465)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (('address = "Support@Shop.example"', 'address = "not an address"'), "e-mail address"),
        (('security = "tls"', 'security = "ssl"'), "security"),
        (('folder = "INBOX"', 'folder = "IN\\r\\nBOX"'), "folder"),
        (('type = "email"', 'type = "email"\nidle_reissue_seconds = 1800'), "idle_reissue"),
        (('type = "email"', 'type = "email"\nfrom_name = "a\\r\\nBcc: x@y.z"'), "single line"),
        (('type = "email"', 'type = "email"\nimap_port = 1'), "unknown key"),
        (('password = "${SMTP_PASSWORD}"', 'pasword = "x"'), "unknown key"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, change: tuple[str, str], complaint: str) -> None:
    text = SKETCH.replace(*change)
    assert text != SKETCH
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text)
    messages = " | ".join(str(p) for p in exc.value.problems)
    assert complaint in messages
    assert "channels[support-mail]" in messages
    assert "i-pw" not in messages and "s-pw" not in messages


def test_smtp_username_needs_a_password(tmp_path: Path) -> None:
    text = SKETCH.replace(', password = "${SMTP_PASSWORD}"', "")
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text)
    assert "username and password" in str(exc.value)


def test_problems_are_keyed_without_the_type_tag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, SKETCH.replace("port = 993", "port = 99999"))
    assert [p.key for p in exc.value.problems] == ["channels[support-mail].imap.port"]


OAUTH = """
[[channels]]
id = "gmail"
type = "email"
address = "support@shop.example"
imap = { host = "imap.gmail.com", username = "support@shop.example" }
smtp = { host = "smtp.gmail.com", username = "support@shop.example" }
oauth = { token_url = "https://oauth2.googleapis.com/token", client_id = "cid.apps", client_secret = "${CS}", refresh_token = "${RT}" }
"""  # noqa: E501


def test_an_oauth_login_needs_no_password_and_names_its_endpoints(tmp_path: Path) -> None:
    ch = load(tmp_path, OAUTH, env={"CS": "client-s3cret", "RT": "1//refresh-t0ken"})
    assert ch.oauth is not None and ch.oauth.mechanism == "xoauth2"
    assert ch.imap.password is None and ch.smtp_oauth
    for secret in ("client-s3cret", "1//refresh-t0ken"):
        assert secret not in repr(ch) and secret not in str(ch.model_dump())
    # Moving a server or the token endpoint needs the secrets sent there given again.
    endpoints = ch.credential_endpoints()
    assert endpoints["imap"][1] == ("oauth.refresh_token",)
    assert endpoints["smtp"][1] == ("oauth.refresh_token",)
    assert endpoints["oauth"] == (
        "https://oauth2.googleapis.com/token",
        ("oauth.client_secret", "oauth.refresh_token"),
    )


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (
            ('username = "support@shop.example" }\nsmtp', 'username = "s", password = "p" }\nsmtp'),
            "leave imap.password out",
        ),
        (("oauth = {", "# oauth = {"), "imap.password is required"),
        (('token_url = "https://', 'token_url = "ftp://'), "token_url"),
        (("client_id", 'mechanism = "plain", client_id'), "mechanism"),
    ],
)
def test_bad_oauth_settings_are_named(
    tmp_path: Path, change: tuple[str, str], complaint: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, OAUTH.replace(*change, 1), env={"CS": "c", "RT": "r"})
    assert complaint in str(exc.value)
