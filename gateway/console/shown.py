"""How the inbox and conversation pages show what the API answers: times, waits, and
which URLs of a message may be shown as an image or a link."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from gateway.attachments import OWN_PATH
from gateway.console.pages import ROOT
from kernel.ids import ATTACHMENT_ID
from kernel.text import is_web_url

_OWN_FILE = re.compile(re.escape(OWN_PATH) + f"({ATTACHMENT_ID})")


def when(value: str | None) -> str:
    """An RFC 3339 time as ``2026-12-05 12:34`` (UTC), or empty."""
    if not value:
        return ""
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float | int | None) -> str:
    """``1 h 05 min``, ``3 min``, ``12 s``; empty for nothing."""
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def since(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from an RFC 3339 time to now."""
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ((now or datetime.now(UTC)) - at).total_seconds()


def own_file(part: dict[str, object]) -> str | None:
    """The console URL of a part's file when it is one kept here (``attachment_id``, or a
    URL whose path is /v1/attachments/{id} over http(s) or with no scheme); None for
    anything else, which is never loaded by the page."""
    attachment_id = part.get("attachment_id")
    if isinstance(attachment_id, str) and re.fullmatch(ATTACHMENT_ID, attachment_id):
        return f"{ROOT}/attachments/{attachment_id}"
    url = part.get("url")
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    if parts.scheme not in ("", "http", "https") or parts.query or parts.fragment:
        return None
    found = _OWN_FILE.fullmatch(parts.path)
    if found is None:
        return None
    return f"{ROOT}/attachments/{found.group(1)}"


def web_link(url: object) -> str | None:
    """A URL the page may link to: http(s) only (never javascript:, data: and the like)."""
    if not isinstance(url, str) or not is_web_url(url.strip()):
        return None
    return url.strip()


def who(contact: Mapping[str, Any] | None, contact_id: str, t: Callable[..., str]) -> str:
    """The name a person is shown by: their name, else their e-mail or phone, else a name
    one of their identities carries; someone with none of these (a webchat visitor) is
    "Visitor" and the end of their id."""
    if contact:
        for key in ("display_name", "email", "phone"):
            if contact.get(key):
                return str(contact[key])
        for identity in contact.get("identities") or ():
            if identity.get("display_name"):
                return str(identity["display_name"])
    return t("who.anonymous", id=contact_id[-6:])
