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
        "survey_csat": "How satisfied are you with the help you got? "
        "(1 = very dissatisfied, 5 = very satisfied)",
        "survey_nps": "How likely are you to recommend us to a friend? "
        "(0 = not at all likely, 10 = extremely likely)",
        "survey_ces": "How easy was it to get your issue resolved? (1 = very hard, 7 = very easy)",
        "survey_reply_number": "Reply with a number from {low} to {high}.",
        "survey_invite": "Thank you for contacting us! Please tell us how we did: "
        "a short survey, under a minute.",
        "survey_link": "Answer the survey",
        "survey_thanks": "Thank you for your feedback!",
        "survey_comment": "Anything to add? Leave a comment",
        "survey_title": "How did we do?",
        "survey_comment_label": "Comment (optional)",
        "survey_send": "Send",
        "survey_done": "Thank you! Your answer was recorded.",
        "survey_already": "This survey was already answered. Thank you!",
        "survey_closed": "This survey has closed.",
        "survey_invalid": "This survey link is not valid.",
        "survey_missing": "Please answer every question.",
    },
    "vi": {
        "image": "Hình ảnh",
        "audio": "Âm thanh",
        "video": "Video",
        "file": "Tệp",
        "sticker": "Nhãn dán",
        "email_subject": "Tin nhắn của bạn",
        "reply_prefix": "Re:",
        "survey_csat": "Bạn hài lòng với sự hỗ trợ của chúng tôi ở mức nào? "
        "(1 = rất không hài lòng, 5 = rất hài lòng)",
        "survey_nps": "Bạn có sẵn lòng giới thiệu chúng tôi cho bạn bè không? "
        "(0 = chắc chắn không, 10 = chắc chắn có)",
        "survey_ces": "Giải quyết vấn đề của bạn dễ dàng đến mức nào? (1 = rất khó, 7 = rất dễ)",
        "survey_reply_number": "Vui lòng trả lời bằng một số từ {low} đến {high}.",
        "survey_invite": "Cảm ơn bạn đã liên hệ! Mời bạn cho biết cảm nhận qua một khảo sát "
        "ngắn, chưa đến một phút.",
        "survey_link": "Trả lời khảo sát",
        "survey_thanks": "Cảm ơn bạn đã đánh giá!",
        "survey_comment": "Bạn muốn góp ý thêm? Để lại nhận xét",
        "survey_title": "Chúng tôi đã hỗ trợ bạn thế nào?",
        "survey_comment_label": "Nhận xét (không bắt buộc)",
        "survey_send": "Gửi",
        "survey_done": "Cảm ơn bạn! Câu trả lời đã được ghi nhận.",
        "survey_already": "Khảo sát này đã được trả lời. Cảm ơn bạn!",
        "survey_closed": "Khảo sát này đã đóng.",
        "survey_invalid": "Liên kết khảo sát không hợp lệ.",
        "survey_missing": "Vui lòng trả lời tất cả các câu hỏi.",
    },
}
FALLBACK = "en"


def system_text(key: str, language: str | None) -> str:
    """The text ``key`` in ``language`` (its base language, else English)."""
    texts = SYSTEM_TEXTS.get((language or "").lower().split("-")[0]) or SYSTEM_TEXTS[FALLBACK]
    return texts[key]
