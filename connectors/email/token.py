"""Threading tokens (pure): our Message-IDs and plus-addresses name a conversation, with
an HMAC part so that nobody can attach mail to a conversation by guessing its id.

    Message-ID     <ogw.{conversation_id}.{message_id}.{mac}@{domain}>
    plus-address   {local}+ogw.{conversation_id}.{mac}@{domain}

The mac is HMAC-SHA256 over the ids with the channel's own key (derived per channel, so a
token of one channel means nothing on another), cut to 80 bits and written in lower-case
base32. Ids are matched without regard to case: some mail systems lower-case addresses.
A Message-ID depends only on the key and the ids, so a retried send reuses it. Given
several keys (a key being replaced), tokens are made with the newest and read with any.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from kernel.secrets import Keyring

PREFIX = "ogw"
_ID = r"[A-Za-z]{1,8}_[0-9A-Za-z]{26}"
_MSGID_TOKEN = re.compile(rf"^{PREFIX}\.({_ID})\.({_ID})\.([a-z2-7]{{16}})@", re.IGNORECASE)
_PLUS_TOKEN = re.compile(rf"\+{PREFIX}\.({_ID})\.([a-z2-7]{{16}})@", re.IGNORECASE)


def _mac(key: bytes, purpose: str, *ids: str) -> str:
    data = "\x1f".join((purpose, *(canonical(i) for i in ids))).encode()
    digest = hmac.new(key, data, hashlib.sha256).digest()[:10]
    return base64.b32encode(digest).decode().lower()


def canonical(ident: str) -> str:
    """Ids as the gateway writes them: lower-case prefix, upper-case ULID body."""
    prefix, _, body = ident.partition("_")
    return f"{prefix.lower()}_{body.upper()}"


@dataclass(frozen=True)
class MessageToken:
    conversation_id: str
    message_id: str


def _any_mac(keys: bytes | Keyring, given: str, purpose: str, *ids: str) -> bool:
    found = False
    for key in Keyring.of(keys):
        found |= hmac.compare_digest(_mac(key, purpose, *ids), given)
    return found


def message_id_for(key: bytes | Keyring, conversation_id: str, message_id: str, domain: str) -> str:
    """Our Message-ID (without angle brackets) for one gateway message."""
    mac = _mac(Keyring.of(key).newest, "msgid", conversation_id, message_id)
    return f"{PREFIX}.{conversation_id}.{message_id}.{mac}@{domain}"


def read_message_id(key: bytes | Keyring, value: str) -> MessageToken | None:
    """The ids inside one of our Message-IDs, or None when it is not one or is forged."""
    m = _MSGID_TOKEN.match(value.strip().strip("<>"))
    if m is None:
        return None
    conv, msg, given = canonical(m.group(1)), canonical(m.group(2)), m.group(3).lower()
    if not _any_mac(key, given, "msgid", conv, msg):
        return None
    return MessageToken(conv, msg)


def plus_address_for(key: bytes | Keyring, address: str, conversation_id: str) -> str:
    """support@shop.example -> support+ogw.<conversation>.<mac>@shop.example"""
    local, _, domain = address.rpartition("@")
    mac = _mac(Keyring.of(key).newest, "plus", conversation_id)
    return f"{local}+{PREFIX}.{conversation_id}.{mac}@{domain}"


def read_plus_address(key: bytes | Keyring, address: str, own_address: str) -> str | None:
    """The conversation a plus-address of our own mailbox names, or None."""
    value = address.strip().lower()
    own_local, _, own_domain = own_address.lower().rpartition("@")
    local, _, domain = value.rpartition("@")
    if domain != own_domain or not local.startswith(own_local + "+"):
        return None
    m = _PLUS_TOKEN.search(value)
    if m is None:
        return None
    conv, given = canonical(m.group(1)), m.group(2).lower()
    if not _any_mac(key, given, "plus", conv):
        return None
    return conv
