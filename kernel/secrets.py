"""The gateway's own secret keys: they sign visitor tokens and e-mail threading ids and
seal (encrypt) the secrets kept in the store.

Keys come from OMNIGW_SECRET_KEY, else from the data directory's key file (generated
once when there is neither, see gateway.keys). Either may list several keys, newest
first, separated by commas or line breaks (spaces around each key are ignored): the
newest seals and signs, every one opens and verifies, so a key can be replaced without losing
what the older one sealed or signed. Every key is at least ``MIN_KEY_BYTES`` long.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from kernel.errors import Conflict

KEY_FILE = "secret.key"
ENV_VAR = "OMNIGW_SECRET_KEY"
MIN_KEY_BYTES = 32
# Commas or line breaks, a run of them (with the spaces around) being one separator.
_SEPARATORS = re.compile(r"\s*[,\r\n][\s,]*")
_HOW = "e.g. 48 random bytes in base64: openssl rand -base64 48"


class SecretKeyError(ValueError):
    """A key given to the gateway is refused (empty, too short): it would protect
    nothing. The message names where the key came from, never the key."""


class Unsealable(ValueError):
    """A sealed value that none of the gateway's keys opens."""


class KeyMissing(Conflict):
    """Something must be sealed or signed, and the gateway runs without a key."""

    default_code = "secret_key_missing"


class Keyring:
    """Secret keys, newest first: the newest seals and signs, every one opens and
    verifies. May be empty (the gateway runs without a key: see gateway.keys)."""

    __slots__ = ("keys",)

    def __init__(self, keys: Sequence[bytes]) -> None:
        self.keys = tuple(keys)

    @classmethod
    def of(cls, key: bytes | Keyring) -> Keyring:
        return key if isinstance(key, Keyring) else cls([key])

    @property
    def newest(self) -> bytes:
        if not self.keys:
            raise _no_key()
        return self.keys[0]

    def derive(self, purpose: str) -> Keyring:
        """Each key's key for one purpose (see ``derive``), in the same order."""
        return Keyring([derive(key, purpose) for key in self.keys])

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __repr__(self) -> str:
        return f"Keyring({len(self.keys)} key(s))"  # never the keys


def _no_key() -> KeyMissing:
    return KeyMissing(
        f"the gateway has no secret key: set {ENV_VAR} or restore the data directory's {KEY_FILE}"
    )


def parse_keys(text: str, source: str) -> Keyring:
    """The keys of OMNIGW_SECRET_KEY or of a key file (``source`` names it in errors)."""
    items = [item for item in _SEPARATORS.split(text.strip()) if item]
    if not items:
        raise SecretKeyError(
            f"{source} is empty: give a secret key of at least {MIN_KEY_BYTES} bytes ({_HOW})"
        )
    keys: list[bytes] = []
    for n, item in enumerate(items, 1):
        which = f"key {n} of {len(items)}" if len(items) > 1 else "the key"
        size = len(item.encode())
        if size < MIN_KEY_BYTES:
            raise SecretKeyError(
                f"{source}: {which} is {size} bytes; a secret key must be at least "
                f"{MIN_KEY_BYTES} bytes ({_HOW}); several keys are separated by commas, "
                "newest first"
            )
        if item.encode() not in keys:
            keys.append(item.encode())
    return Keyring(keys)


def read_keys(data_dir: Path, env_value: str | None) -> Keyring | None:
    """The keys given in OMNIGW_SECRET_KEY (when set, even empty), else those of the key
    file; None when there are neither. Raises SecretKeyError for a refused key."""
    if env_value is not None:
        return parse_keys(env_value, ENV_VAR)
    path = data_dir / KEY_FILE
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return parse_keys(text, f"the key file {path}")


def new_key_file(data_dir: Path) -> Keyring:
    """Generate the key file (only when the store holds nothing sealed: gateway.keys)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    key = secrets.token_urlsafe(48).encode()
    # O_EXCL: two processes starting at once must not both write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        found = read_keys(data_dir, None)
        if found is None:  # removed again meanwhile
            raise
        return found
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
        f.flush()
        os.fsync(f.fileno())
    return Keyring([key])


def derive(key: bytes, purpose: str) -> bytes:
    """A separate key per purpose, so one use can never forge another."""
    return hmac.new(key, purpose.encode(), hashlib.sha256).digest()


class SecretBox:
    """Encrypts secrets kept in the store (webhook secrets, credentials given through the
    admin API, refreshed tokens) with a key derived from the gateway's secret key
    (Fernet: AES-128-CBC with an HMAC-SHA256, random IV, authenticated). Seals with the
    newest key; opens with any."""

    def __init__(self, keys: bytes | Keyring) -> None:
        from cryptography.fernet import Fernet

        self._fernets = [
            Fernet(base64.urlsafe_b64encode(derive(key, "secrets-at-rest")))
            for key in Keyring.of(keys)
        ]

    @property
    def has_key(self) -> bool:
        return bool(self._fernets)

    def seal(self, plaintext: str) -> str:
        if not self._fernets:
            raise _no_key()
        return self._fernets[0].encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        return self._open(token)[0]

    def reseal(self, token: str) -> str | None:
        """The value sealed again with the newest key; None when it already is."""
        plaintext, newest = self._open(token)
        return None if newest else self.seal(plaintext)

    def _open(self, token: str) -> tuple[str, bool]:
        from cryptography.fernet import InvalidToken

        if not self._fernets:
            raise Unsealable("a stored secret cannot be opened: the gateway has no secret key")
        for n, fernet in enumerate(self._fernets):
            try:
                return fernet.decrypt(token.encode()).decode(), n == 0
            except InvalidToken:
                continue
        raise Unsealable(
            "a stored secret cannot be opened: it was sealed with a secret key this gateway "
            f"does not have ({ENV_VAR} or the key file changed?)"
        )


def url_without_password(url: str) -> str:
    """A URL fit for logs and messages: its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
