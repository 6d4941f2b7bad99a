"""Text and phone-number normalisation applied to everything that enters the gateway."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

import phonenumbers

_PHONE_JUNK = re.compile(r"[\s().\-/]")
# C0/C1 control characters other than tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def nfc(text: str) -> str:
    """Unicode NFC form: Vietnamese typed as decomposed diacritics becomes one code point each."""
    return unicodedata.normalize("NFC", text)


def clean_text(text: str) -> str:
    """NFC plus removal of control characters that no channel can display."""
    return _CONTROL.sub("", nfc(text))


class InvalidPhoneNumber(ValueError):
    """The value cannot be read as a phone number."""


def normalize_phone(raw: str, default_region: str = "VN") -> str:
    """Return the E.164 form of a phone number.

    Vietnamese habits are handled: ``0912 345 678`` and ``84912345678`` both become
    ``+84912345678``. Numbers that are merely possible (not known valid) are accepted,
    because carriers add ranges faster than numbering metadata follows.
    """
    value = _PHONE_JUNK.sub("", nfc(raw).strip())
    if not value:
        raise InvalidPhoneNumber("empty phone number")
    if value.startswith("00"):
        value = "+" + value[2:]
    elif value.startswith("84") and default_region == "VN" and 10 <= len(value) <= 12:
        value = "+" + value
    try:
        parsed = phonenumbers.parse(value, None if value.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber("not a possible phone number")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def normalize_email(value: str | None) -> str | None:
    """Lower-cased NFC address, or None when the value is not an e-mail address."""
    if not value:
        return None
    email = nfc(value).strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email):
        return None
    if domain.startswith(".") or domain.endswith(".") or "@" in local:
        return None
    return email


MAX_URL = 8192


def is_web_url(value: str) -> bool:
    """An absolute http(s) URL with a host, of reasonable length, without control
    characters: what a link or a file may point to (never `javascript:`, `data:` or
    `file:`)."""
    if len(value) > MAX_URL or not value.isprintable():
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


# Letters that carry no combining mark to strip: Vietnamese đ/Đ first of all.
_FOLD_LETTERS = str.maketrans({"đ": "d", "Đ": "d", "ð": "d", "ı": "i", "ł": "l", "ø": "o"})
_NOT_WORD = re.compile(r"[^\w]+|_")


def fold_name(text: str | None) -> str:
    """A name as searched: diacritics and case dropped (``Nguyễn Văn Đức`` ->
    ``nguyen van duc``), anything but letters and digits turned into single spaces."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_FOLD_LETTERS))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = unicodedata.normalize("NFKC", bare).casefold().translate(_FOLD_LETTERS)
    return " ".join(_NOT_WORD.sub(" ", folded).split())


MAX_TAIL = 200


def name_tails(text: str | None) -> list[str]:
    """Each word of the folded name with the rest of the name after it (``Nguyễn Văn An``
    -> ``an``, ``nguyen van an``, ``van an``), at most MAX_TAIL characters each: a name
    is found by the start of any of them."""
    words = fold_name(text).split()
    return sorted({" ".join(words[i:])[:MAX_TAIL] for i in range(len(words))})
