"""The gateway's own secret key: signs visitor tokens (and later encrypts stored
credentials). From OMNIGW_SECRET_KEY, else generated once into the data directory."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

KEY_FILE = "secret.key"


def load_secret_key(data_dir: Path, env_value: str | None) -> bytes:
    if env_value:
        return env_value.encode()
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    # O_EXCL: two processes starting at once must not both write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return key


def derive(key: bytes, purpose: str) -> bytes:
    """A separate key per purpose, so one use can never forge another."""
    return hmac.new(key, purpose.encode(), hashlib.sha256).digest()


class SecretBox:
    """Encrypts secrets kept in the store (webhook secrets, credentials given through the
    admin API) with a key derived from the gateway's secret key (Fernet: AES-128-CBC with
    an HMAC-SHA256, random IV, authenticated)."""

    def __init__(self, key: bytes) -> None:
        from cryptography.fernet import Fernet

        self._fernet = Fernet(base64.urlsafe_b64encode(derive(key, "secrets-at-rest")))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError(
                "a stored secret cannot be decrypted: was OMNIGW_SECRET_KEY changed?"
            ) from None


def url_without_password(url: str) -> str:
    """A URL fit for logs and messages: its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
