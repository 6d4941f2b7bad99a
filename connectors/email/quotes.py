"""Reply extraction (pure): the new part of a reply, apart from quoted history and signature.

Works on plain text (HTML is first turned into text with blockquotes as "> " lines, see
:func:`connectors.email.html.html_to_text`). The cut is made at the first of:

- an attribution line, possibly wrapped over up to three lines: Gmail, Apple Mail and
  Thunderbird "On <date>, <name> wrote:", Vietnamese "Vào <ngày>, <tên> đã viết:", and the
  German, French, Spanish, Dutch and Portuguese equivalents;
- Outlook's header block ("From: ... / Sent: ..." or "Từ: ... / Đã gửi: ..."), with or
  without the "-----Original Message-----" or underscore line above it;
- a block of "> " lines that runs to the end of the text.

Replies written between or below the quoted lines (inline answers, bottom-posting) are
kept whole: cutting there would lose what the customer wrote. A signature after "-- " or a
"Sent from my iPhone" line at the end of the new part is separated too. When nothing is
left (a reply that is only a quote), the whole text is the new part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ATTRIBUTION = [
    re.compile(r"^\s*On\b.{1,400}\b(wrote|writes)\s*:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*(Vào|Lúc)\b.{1,400}\bđã viết\s*:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^.{0,300}<[^<>\s]+@[^<>\s]+>\s*đã viết\s*:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*Am\b.{1,400}\bschrieb\b.{0,200}:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*Le\b.{1,400}\ba écrit\s*:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*El\b.{1,400}\bescribió\s*:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*Op\b.{1,400}\bschreef\b.{0,200}:\s*$", re.IGNORECASE | re.DOTALL),
    re.compile(r"^\s*Em\b.{1,400}\bescreveu\s*:\s*$", re.IGNORECASE | re.DOTALL),
]
_SEPARATOR = re.compile(
    r"^\s*(-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|"
    r"Mensaje original|Thư gốc|Tin nhắn gốc)\s*-{2,}|_{20,})\s*$",
    re.IGNORECASE,
)
# Outlook's header block: a From line followed shortly by a Sent/Date line.
_HEADER_FROM = re.compile(r"^\s*\*?(From|Từ|Von|De|Van|Người gửi)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(Sent|Date|Đã gửi|Ngày|Gửi|Thời gian|Gesendet|Datum|Envoyé|Enviado|Verzonden|"
    r"To|Đến|An|À|Para|Aan|Subject|Chủ đề)\s*:",
    re.IGNORECASE,
)
_SIG_DELIMITER = re.compile(r"^-- ?$")
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(Sent from my \w+.*|Sent from (Mail|Outlook|Yahoo Mail|Gmail)\b.*|"
    r"Get Outlook for (iOS|Android).*|(Được )?[Gg]ửi từ (iPhone|iPad|điện thoại).*|"
    r"Von meinem \w+ gesendet.*|Envoyé de mon \w+.*)\s*$",
    re.IGNORECASE,
)
SIGNATURE_MAX_LINES = 15


@dataclass(frozen=True)
class Reply:
    """A message's text split into what is new, what it quotes, and its signature."""

    text: str
    quoted: str | None = None
    signature: str | None = None

    @property
    def stripped(self) -> bool:
        return self.quoted is not None or self.signature is not None


def _is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def _attribution_at(lines: list[str], i: int) -> int:
    """How many lines an attribution starting at line i spans (0: none)."""
    joined = ""
    for n in range(3):
        if i + n >= len(lines) or (n and not lines[i + n].strip()):
            break
        joined = (joined + " " + lines[i + n].strip()) if joined else lines[i + n].strip()
        if any(p.match(joined) for p in _ATTRIBUTION):
            return n + 1
    return 0


def _header_block_at(lines: list[str], i: int) -> bool:
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = [line for line in lines[i + 1 : i + 5] if line.strip()]
    return bool(following) and _HEADER_NEXT.match(following[0]) is not None


def _quote_cut(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        span = _attribution_at(lines, i)
        if span:
            rest = lines[i + span :]
            if _interleaved(rest):
                return None
            return i
        if _SEPARATOR.match(line):
            return i
        if _header_block_at(lines, i):
            return i
    # A quote block that runs to the end of the text (bottom of a top-posted reply).
    end = len(lines)
    start = end
    seen_quote = False
    for j in range(end - 1, -1, -1):
        if _is_quote(lines[j]):
            seen_quote = True
            start = j
        elif not lines[j].strip():
            start = j
        else:
            break
    return start if seen_quote and not _interleaved(lines[start:]) else None


def _interleaved(lines: list[str]) -> bool:
    """The writer's own lines after quoted ones: an inline or bottom-posted answer."""
    in_quotes = False
    for line in lines:
        if not line.strip():
            continue
        if _is_quote(line):
            in_quotes = True
        elif in_quotes:
            return True
    return False


def _signature_cut(lines: list[str]) -> int | None:
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    if last < 0:
        return None
    if _MOBILE_SIGNATURE.match(lines[last]):
        return last
    for i in range(last, max(-1, last - SIGNATURE_MAX_LINES), -1):
        if _SIG_DELIMITER.match(lines[i]):
            return i
    return None


def _join(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n").rstrip()


def extract_reply(text: str) -> Reply:
    """Split a message's plain text into the new part, the quoted history and a signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    quoted = None
    cut = _quote_cut(lines)
    if cut is not None:
        quoted = _join(lines[cut:]) or None
        lines = lines[:cut]
    signature = None
    sig = _signature_cut(lines)
    if sig is not None:
        signature = _join(lines[sig:]) or None
        lines = lines[:sig]
    new = _join(lines)
    if not new.strip():
        return Reply(text=_join(text.replace("\r\n", "\n").split("\n")))
    return Reply(text=new, quoted=quoted, signature=signature)
