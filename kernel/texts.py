"""The few words the gateway itself writes to customers, in Vietnamese and English: the
stand-ins for parts a channel cannot show ("[Hình ảnh]"), an e-mail's default subject and
its reply prefix. Queue notices are settings (``[routing.queue_notice] texts``).

A conversation's ``language`` chooses (``vi-VN`` takes ``vi``); a conversation whose
language is not known gets English, as before languages were told apart here.
"""

from __future__ import annotations

SYSTEM_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "image": "Image",
        "audio": "Audio",
        "video": "Video",
        "file": "File",
        "sticker": "Sticker",
        "email_subject": "Your message",
        # Every mail client knows "Re:"; Outlook's localised "TL:" is not recognised by the
        # others as a reply, so Vietnamese keeps "Re:" too.
        "reply_prefix": "Re:",
    },
    "vi": {
        "image": "Hình ảnh",
        "audio": "Âm thanh",
        "video": "Video",
        "file": "Tệp",
        "sticker": "Nhãn dán",
        "email_subject": "Tin nhắn của bạn",
        "reply_prefix": "Re:",
    },
}
FALLBACK = "en"


def system_text(key: str, language: str | None) -> str:
    """The text ``key`` in ``language`` (its base language, else English)."""
    texts = SYSTEM_TEXTS.get((language or "").lower().split("-")[0]) or SYSTEM_TEXTS[FALLBACK]
    return texts[key]
