"""Typed, opaque identifiers that sort by creation time.

Every id is a short type prefix plus a ULID-like body (48-bit millisecond timestamp and 80
random bits, Crockford base32). Within one process ids are strictly increasing even inside
the same millisecond, so ``ORDER BY id`` is creation order; this is what cursors rely on.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from typing import NewType

ContactId = NewType("ContactId", str)
ConversationId = NewType("ConversationId", str)
MessageId = NewType("MessageId", str)
AgentId = NewType("AgentId", str)
ChannelId = NewType("ChannelId", str)
VisitorId = NewType("VisitorId", str)
TokenId = NewType("TokenId", str)

# A stored file's id ("att_" and a ULID), as it appears in the URLs of media parts.
ATTACHMENT_ID = r"att_[0-9A-Z]{26}"

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0
_RAND_MAX = (1 << 80) - 1


_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())


def _encode128(value: int) -> str:
    """26 Crockford base32 characters for a 128-bit value (base64's C codec does the work)."""
    # 128 bits as the low bits of 130 (26 x 5), padded to 160 so base32 needs no "=".
    raw = base64.b32encode((value << 30).to_bytes(20, "big"))[:26]
    return raw.translate(_FROM_RFC4648).decode()


def ulid() -> str:
    """A 26-character ULID, monotonic within this process."""
    global _last_ms, _last_rand
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            # Same (or earlier: clock stepped back) millisecond: keep order by incrementing.
            ms = _last_ms
            rand = _last_rand + 1
            if rand > _RAND_MAX:
                ms += 1
                rand = int.from_bytes(os.urandom(10), "big") >> 1
        else:
            # Top bit clear leaves room to increment many times within one millisecond.
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms, _last_rand = ms, rand
    return _encode128((ms << 80) | rand)


def new_contact_id() -> ContactId:
    return ContactId("ct_" + ulid())


def new_conversation_id() -> ConversationId:
    return ConversationId("cv_" + ulid())


def new_message_id() -> MessageId:
    return MessageId("msg_" + ulid())


def new_survey_id() -> str:
    return "sv_" + ulid()


def new_visitor_id() -> VisitorId:
    return VisitorId("v_" + ulid())


def new_token_id() -> TokenId:
    return TokenId("tok_" + ulid())
