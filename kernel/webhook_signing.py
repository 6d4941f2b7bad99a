"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

Secrets are `whsec_` + base64 of 32 random bytes. While a secret rotates, a delivery
carries one signature per valid secret, space-separated; a receiver accepts any.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The raw key of a `whsec_...` secret; raises ValueError for anything else."""
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    body = secret[len(PREFIX) :]
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret holds 24 to 64 random bytes")
    return key


def sign(msg_id: str, timestamp: int, body: bytes, keys: list[bytes]) -> str:
    """The webhook-signature header value for these keys."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )


def headers(msg_id: str, timestamp: int, body: bytes, keys: list[bytes]) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, keys),
        "content-type": "application/json",
    }
