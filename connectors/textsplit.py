"""Long text cut into chunks a provider accepts (Messenger and Zalo both take at most
2,000 characters a message), between words and never inside a character."""

from __future__ import annotations

import unicodedata


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (characters outside the BMP count twice)."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _fit(text: str, limit: int) -> int:
    """The largest n such that text[:n] is at most ``limit`` UTF-16 units."""
    units = 0
    for i, c in enumerate(text):
        units += 2 if ord(c) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def _attaches(c: str) -> bool:
    """Whether ``c`` belongs to the character before it (combining mark, ZWJ, selector)."""
    return (
        unicodedata.combining(c) != 0
        or c == "\u200d"
        or "\ufe00" <= c <= "\ufe0f"
        or "\U0001f3fb" <= c <= "\U0001f3ff"  # skin tones
    )


def _break_at(window: str) -> int | None:
    """Where to end a chunk inside ``window``: the last paragraph break or line break in
    its second half, else the last whitespace; None when it has no whitespace."""
    half = len(window) // 2
    for sep in ("\n\n", "\n"):
        at = window.rfind(sep)
        if at >= half:
            return at
    for i in range(len(window) - 1, 0, -1):
        if window[i].isspace():
            return i
    return None


def split_text(text: str, limit: int) -> list[str]:
    """Text as chunks of at most ``limit`` UTF-16 units, cut between words, in order.

    A word longer than the limit (a long URL) is cut inside, never inside a character
    or between a character and the marks that belong to it.
    """
    if limit < 2:
        raise ValueError("limit must leave room for one character")
    chunks: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_len(rest) <= limit:
            chunks.append(rest)
            break
        cut = _fit(rest, limit)
        at = _break_at(rest[: cut + 1])  # a space right after the window is a fine break
        if at is not None and at > 0:
            head, rest = rest[:at].rstrip(), rest[at:].lstrip()
        else:
            while cut > 1 and (_attaches(rest[cut]) or rest[cut - 1] == "\u200d"):
                cut -= 1
            head, rest = rest[:cut], rest[cut:].lstrip()
        chunks.append(head)
    return chunks
