"""The console's words in Vietnamese and English. Each page module registers its own
(`register`), so pages are written side by side without sharing one list."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"

# key -> (Vietnamese, English)
_WORDS: dict[str, tuple[str, str]] = {}


def register(words: Mapping[str, tuple[str, str]]) -> None:
    for key, pair in words.items():
        if key in _WORDS and _WORDS[key] != pair:
            raise ValueError(f"console word {key!r} is registered twice with other texts")
        _WORDS[key] = pair


def translator(language: str) -> Callable[..., str]:
    """``t(key, **values)``: the word in ``language``, with ``{name}`` filled in. An
    unknown key shows as itself (a missing word is seen, never an error page)."""
    index = 0 if language == "vi" else 1

    def t(key: str, **values: object) -> str:
        pair = _WORDS.get(key)
        text = key if pair is None else pair[index]
        return text.format(**values) if values else text

    return t


def language_of(request: web.Request, cookie: str) -> str:
    """``?lang=`` first, then the console's cookie, then the browser's Accept-Language."""
    asked = request.query.get("lang") or request.cookies.get(cookie)
    if asked in LANGUAGES:
        return asked
    for item in request.headers.get("Accept-Language", "").split(","):
        code = item.split(";", 1)[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


register(
    {
        "console": ("Bảng điều khiển", "Console"),
        "nav.inbox": ("Hộp thư", "Inbox"),
        "nav.channels": ("Kênh", "Channels"),
        "nav.agents": ("Nhân viên", "Agents"),
        "nav.webhooks": ("Webhook", "Webhooks"),
        "nav.figures": ("Số liệu", "Figures"),
        "signout": ("Đăng xuất", "Sign out"),
        "signin": ("Đăng nhập", "Sign in"),
        "signin.title": ("Đăng nhập bảng điều khiển", "Sign in to the console"),
        "signin.token": ("Mã API (API token)", "API token"),
        "signin.help": (
            "Dán một mã API có quyền admin, agent hoặc integration. Mã không được lưu trong "
            "trình duyệt; phiên đăng nhập kết thúc sau 12 giờ hoặc khi mã bị thu hồi.",
            "Paste an API token with the admin, agent or integration scope. The token is not "
            "kept in the browser; the session ends after 12 hours or when the token is revoked.",
        ),
        "signin.invalid": ("Mã không hợp lệ.", "That token is not valid."),
        "signin.scope": (
            "Mã này không dùng được cho bảng điều khiển (cần admin, agent hoặc integration).",
            "This token cannot open the console (it needs admin, agent or integration).",
        ),
        "signin.ended": (
            "Phiên đã kết thúc. Hãy đăng nhập lại.",
            "Your session has ended. Please sign in again.",
        ),
        "signin.expired_form": (
            "Biểu mẫu đã hết hạn, hãy thử lại.",
            "The form had expired; please try again.",
        ),
        "signed_in_as": ("Đăng nhập với mã {token}", "Signed in with token {token}"),
        "error.title": ("Có lỗi", "Something went wrong"),
        "error.csrf": (
            "Yêu cầu bị từ chối: thiếu hoặc sai mã CSRF. Hãy tải lại trang.",
            "Request refused: the CSRF token is missing or wrong. Reload the page.",
        ),
        "error.scope": (
            "Mã của bạn không có quyền cho việc này.",
            "Your token does not have the scope for this.",
        ),
        "error.not_found": ("Không tìm thấy.", "Not found."),
        "back": ("Quay lại", "Back"),
        "save": ("Lưu", "Save"),
        "cancel": ("Hủy", "Cancel"),
        "delete": ("Xóa", "Delete"),
        "none": ("Không có", "None"),
        "yes": ("Có", "Yes"),
        "no": ("Không", "No"),
        "language": ("Ngôn ngữ", "Language"),
        "live": ("Trực tiếp", "Live"),
        "more": ("Xem thêm", "More"),
        "who.anonymous": ("Khách …{id}", "Visitor …{id}"),
    }
)
