"""Channels: their state kept live, where each is defined, the URLs and the snippet to
paste into providers' consoles, and forms to add, change and remove the channels of the
admin API (those of the config file are shown, never changed here)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connectors.registry import CHANNELS
from gateway.api.errors import status_of
from gateway.console.fields import (
    MAIN,
    MAX_ROWS,
    Input,
    Typed,
    field_of,
    flat,
    inputs_of,
    read_form,
    shown,
)
from gateway.console.pages import ROOT, Pages, View, redirect
from gateway.console.texts import register, translator
from kernel.errors import DomainError
from kernel.models import ChannelType

pages = Pages()
LIST = ("GET", "/v1/channels")
ONE = ("GET", "/v1/channels/{id}")
CREATE = ("POST", "/v1/channels")
CHANGE = ("PATCH", "/v1/channels/{id}")
REMOVE = ("DELETE", "/v1/channels/{id}")
TYPES = tuple(t.value for t in CHANNELS)
# Channels whose provider calls a webhook URL of the gateway.
WEBHOOK_TYPES = ("facebook", "zalo")

register(
    {
        "channels.title": ("Kênh", "Channels"),
        "channels.add": ("Thêm kênh", "Add a channel"),
        "channels.add_type": ("Thêm kênh: {type}", "Add a channel: {type}"),
        "channels.empty": ("Chưa có kênh nào.", "No channels yet."),
        "channels.id": ("Mã kênh (id)", "Channel id"),
        "channels.id_hint": (
            "Chữ, số, '_', '.' hoặc '-'; không đổi được sau khi tạo. Nằm trong URL webhook.",
            "Letters, digits, '_', '.' or '-'; cannot change later. Part of the webhook URL.",
        ),
        "channels.type": ("Loại", "Type"),
        "channels.name": ("Tên", "Name"),
        "channels.state": ("Trạng thái", "State"),
        "channels.since": ("Từ lúc", "Since"),
        "channels.source": ("Nguồn", "Defined in"),
        "channels.source.config": ("Tệp cấu hình", "Config file"),
        "channels.source.api": ("API quản trị", "Admin API"),
        "channels.readonly": (
            "Kênh này được khai báo trong tệp cấu hình: chỉ xem được ở đây, hãy sửa trong tệp "
            "cấu hình rồi khởi động lại.",
            "This channel is defined in the config file: it is read-only here; change it in "
            "the config file and restart.",
        ),
        "channels.edit": ("Sửa", "Edit"),
        "channels.view": ("Xem", "View"),
        "channels.settings": ("Cấu hình", "Settings"),
        "channels.more": ("Cấu hình khác", "More settings"),
        "channels.secret_set": ("đã đặt", "set"),
        "channels.secret_unset": ("chưa đặt", "not set"),
        "channels.secret_keep": (
            "Để trống để giữ giá trị hiện tại; nhập giá trị mới để thay.",
            "Leave empty to keep the current value; type a new one to replace it.",
        ),
        "channels.secret_clear": ("Xóa giá trị này", "Remove this value"),
        "channels.secret_note": (
            "Thông tin bí mật chỉ ghi, không bao giờ hiển thị lại.",
            "Credentials are write-only: they are never shown again.",
        ),
        "channels.secrets_again": (
            "Vì lý do an toàn, thông tin bí mật bạn đã nhập không được giữ lại: hãy nhập lại.",
            "For safety, the credentials you typed were not kept: type them again.",
        ),
        "channels.lines_hint": ("Mỗi dòng một giá trị.", "One value per line."),
        "channels.pairs_hint": ("Mỗi dòng một cặp: tên = mã.", "One pair per line: name = id."),
        "channels.pairs_error": (
            "Mỗi dòng phải có dạng tên = mã.",
            "Each line must read name = id.",
        ),
        "channels.row_secret_again": (
            "Danh sách được thay cả khối: hãy nhập lại mã truy cập của trang này.",
            "The list is replaced as a whole: give this page's token again.",
        ),
        "channels.required": ("Bắt buộc.", "Required."),
        "channels.row": ("Mục {n}", "Item {n}"),
        "channels.row_hint": (
            "Để trống một mục để bỏ nó. Cần thêm mục? Lưu rồi mở lại: luôn có một mục trống.",
            "Leave an item empty to drop it. Need more? Save and come back: there is always "
            "one empty item.",
        ),
        "channels.errors": ("Chưa lưu được:", "Not saved:"),
        "channels.saved": ("Đã lưu.", "Saved."),
        "channels.created": ("Đã thêm kênh.", "Channel added."),
        "channels.unchanged": ("Không có gì thay đổi.", "Nothing changed."),
        "channels.delete_title": ("Xóa kênh {id}?", "Remove channel {id}?"),
        "channels.delete_note": (
            "Kênh dừng ngay. Các cuộc hội thoại và tin nhắn của nó vẫn được giữ.",
            "The channel stops at once. Its conversations and messages stay.",
        ),
        "channels.deleted": ("Đã xóa kênh.", "Channel removed."),
        "channels.unknown_type": ("Loại kênh không hợp lệ.", "Not a channel type."),
        "channels.urls": ("Dán vào trang của nhà cung cấp", "To paste into the provider's console"),
        "channels.copy": ("Sao chép", "Copy"),
        "channels.callback_url": ("Callback URL (Meta)", "Callback URL (Meta)"),
        "channels.verify_token": ("Verify token", "Verify token"),
        "channels.verify_note": (
            "Giá trị của verify_token ({state}); không hiển thị ở đây: dùng giá trị bạn đã nhập.",
            "The value of verify_token ({state}); not shown here: use the one you typed.",
        ),
        "channels.zalo_url": ("Webhook URL (Zalo)", "Webhook URL (Zalo)"),
        "channels.embed": ("Mã nhúng widget", "Widget embed snippet"),
        "channels.embed_note": (
            "Đặt trên các trang thuộc allowed_origins.",
            "Put it on pages of the allowed_origins.",
        ),
        "channels.base_public": (
            "Theo [server] public_url.",
            "From [server] public_url.",
        ),
        "channels.base_request": (
            "[server] public_url chưa đặt: dùng địa chỉ của trang này. Đặt public_url nếu nhà "
            "cung cấp truy cập gateway qua địa chỉ khác.",
            "[server] public_url is not set: this page's own address is used. Set public_url "
            "when providers reach the gateway at another address.",
        ),
        "channels.webhook_after": (
            "URL webhook hiện ra sau khi thêm kênh.",
            "The webhook URL is shown once the channel is added.",
        ),
        # Hints, by type and key (or by key for every type).
        "channels.hint.name": ("Tên hiển thị (tùy chọn).", "A display name (optional)."),
        "channels.hint.allowed_origins": (
            "Các origin (https://shop.example) được mở widget; '*' cho mọi origin.",
            "Origins (https://shop.example) whose pages may open the widget; '*' for any.",
        ),
        "channels.hint.identity_secret": (
            "Khi đặt, identify phải kèm hmac = HMAC-SHA256(secret, user_id).",
            "When set, identify must carry hmac = HMAC-SHA256(secret, user_id).",
        ),
        "channels.hint.facebook.app_secret": (
            "App secret của ứng dụng Meta: kiểm tra X-Hub-Signature-256.",
            "The Meta app's secret: checks X-Hub-Signature-256.",
        ),
        "channels.hint.verify_token": (
            "Chuỗi bất kỳ; nhập cùng giá trị trong cài đặt webhook của Meta.",
            "Any string; the same one in Meta's webhook settings.",
        ),
        "channels.hint.pages": (
            "Các Trang Facebook: id và Page access token.",
            "The Facebook Pages: id and Page access token.",
        ),
        "channels.hint.facebook.app_id": (
            "Id ứng dụng (tùy chọn): tin echo của chính gateway không bị lưu hai lần.",
            "The app's id (optional): echoes of our own sends are never stored twice.",
        ),
        "channels.hint.human_agent_tag": (
            "Ứng dụng có quyền Human Agent: trả lời tới 7 ngày.",
            "The app has the Human Agent permission: replies up to 7 days.",
        ),
        "channels.hint.api_base": (
            "Địa chỉ API của nhà cung cấp (proxy hoặc sandbox có thể thay).",
            "The provider's API base (a proxy or a sandbox can stand in).",
        ),
        "channels.hint.oa_id": ("Id của Official Account.", "The Official Account's id."),
        "channels.hint.zalo.app_id": (
            "Ứng dụng Zalo liên kết với OA.",
            "The Zalo app linked to the OA.",
        ),
        "channels.hint.zalo.app_secret": (
            "Secret key của ứng dụng: làm mới token.",
            "The app's secret key: token refresh.",
        ),
        "channels.hint.oa_secret_key": (
            "OA secret key: kiểm tra X-ZEvent-Signature.",
            "The OA secret key: checks X-ZEvent-Signature.",
        ),
        "channels.hint.access_token": (
            "Cặp token OAuth v4 ban đầu.",
            "The starting OAuth v4 token pair.",
        ),
        "channels.hint.zns_templates": (
            "Mẫu ZNS đã duyệt: tên = mã mẫu, mỗi dòng một mẫu.",
            "Approved ZNS templates: name = template id, one per line.",
        ),
        "channels.hint.address": (
            "Hộp thư khách hàng gửi tới; trả lời đi từ đây.",
            "The mailbox customers write to; replies come from it.",
        ),
        "channels.hint.from_name": (
            "Tên hiển thị trong From (mặc định: name).",
            "Display name in From (default: name).",
        ),
        "channels.hint.imap": ("Nhận thư (IMAP).", "Mail in (IMAP)."),
        "channels.hint.smtp": (
            "Gửi thư (SMTP). Không có username và password: gửi không AUTH.",
            "Mail out (SMTP). Without username and password: sent without AUTH.",
        ),
        "channels.hint.oauth": (
            "Đăng nhập OAuth 2.0 (Gmail, Microsoft 365) thay cho imap.password (tùy chọn).",
            "OAuth 2.0 login (Gmail, Microsoft 365) instead of imap.password (optional).",
        ),
    }
)


def base_url(view: View) -> tuple[str, bool]:
    """Where providers reach the gateway: `[server] public_url`, else this request's own
    origin (and whether it is the configured one)."""
    public = view.ctx.settings.server.public_url.strip().rstrip("/")
    if public:
        return public, True
    return f"{view.request.scheme}://{view.request.host}", False


def urls(view: View, channel: dict[str, Any]) -> dict[str, str]:
    base, _ = base_url(view)
    found = {}
    if channel["type"] in WEBHOOK_TYPES:
        found["webhook"] = f"{base}/webhooks/{channel['id']}"
    if channel["type"] == "webchat":
        found["embed"] = (
            f'<script src="{base}/webchat/widget.js" data-channel="{channel["id"]}" async></script>'
        )
    return found


async def _details(view: View) -> list[dict[str, Any]]:
    listed = (await view.call(*LIST))["items"]
    shown_ = []
    for info in listed:
        detail = await view.call(*ONE, params={"id": info["id"]})
        shown_.append({**detail, "name": detail["settings"].get("name"), "urls": urls(view, info)})
    return shown_


@pages.get("/channels", needs=LIST)
async def channel_list(view: View) -> web.StreamResponse:
    public = base_url(view)[1]
    notice = {"deleted": "channels.deleted"}.get(view.request.query.get("done", ""))
    return view.render(
        "channels.html",
        channels=await _details(view),
        types=TYPES,
        public=public,
        notice=notice,
    )


@pages.get("/channels/list", needs=LIST)
async def channel_list_fragment(view: View) -> web.StreamResponse:
    """The list alone (htmx swaps it in when a channel's state changes)."""
    return view.fragment("channels_list.html", channels=await _details(view))


def _inputs(type_: str) -> list[Input]:
    return inputs_of(CHANNELS[ChannelType(type_)].settings)


def _known(inputs: list[Input]) -> set[str]:
    known = {"id"}
    for item in inputs:
        known.add(item.path)
        for child in flat(item.children) if item.kind == "group" else []:
            known.add(child.path)
        if item.kind == "rows":
            for n in range(MAX_ROWS):
                known.update(f"{item.path}.{n}.{c.path}" for c in item.children)
    return known


def _form(
    view: View,
    type_: str,
    *,
    detail: dict[str, Any] | None,
    typed: Typed | None = None,
    general: list[str] | None = None,
    status: int = 200,
    notice: str | None = None,
    channel_id: str = "",
) -> web.Response:
    inputs = _inputs(type_)
    main = MAIN.get(type_, ())
    settings = detail["settings"] if detail else {}
    typed = typed or Typed()
    values: dict[str, str] = {}
    for item in flat(inputs):
        if item.kind in ("secret", "rows"):
            continue
        if detail:
            from_settings = shown(_get(settings, item.path))
        else:  # a new channel: a checkbox or a choice starts at its default
            from_settings = item.default if item.kind in ("bool", "select") else ""
        values[item.path] = typed.values.get(item.path, from_settings)
    rows: dict[str, list[dict[str, str]]] = {}
    for item in inputs:
        if item.kind == "rows":
            before = [
                {c.path: shown(r.get(c.path)) for c in item.children if c.kind != "secret"}
                for r in (settings.get(item.path) or [])
            ]
            rows[item.path] = [*typed.rows.get(item.path, before), {}]
    more_open = any(e.split(".", 1)[0] not in main for e in typed.errors)
    t = translator(view.language)

    def hint(path: str) -> str:
        for key in (f"channels.hint.{type_}.{path}", f"channels.hint.{path}"):
            if t(key) != key:
                return str(t(key))
        return ""

    return view.render(
        "channel_form.html",
        status=status,
        type=type_,
        detail=detail,
        channel_id=channel_id or (detail["id"] if detail else ""),
        main_inputs=[i for i in inputs if i.top in main],
        more_inputs=[i for i in inputs if i.top not in main],
        values=values,
        rows=rows,
        secrets=set(detail["secrets"]) if detail else set(),
        errors=typed.errors,
        general=general or [],
        retype=bool(typed.errors or general) and status != 200,
        more_open=more_open,
        notice=notice,
        urls=urls(view, detail) if detail else {},
        public=base_url(view)[1],
        hint=hint,
    )


def _get(settings: dict[str, Any], path: str) -> Any:
    value: Any = settings
    for step in path.split("."):
        value = value.get(step) if isinstance(value, dict) else None
    return value


def _type_asked(view: View, value: str | None) -> str | None:
    return value if value in TYPES else None


@pages.get("/channels/new", needs=CREATE)
async def new_channel(view: View) -> web.StreamResponse:
    type_ = _type_asked(view, view.request.query.get("type"))
    if type_ is None:
        return view.render("channel_types.html", types=TYPES)
    return _form(view, type_, detail=None)


@pages.post("/channels/new", needs=CREATE)
async def create_channel(view: View) -> web.StreamResponse:
    form = await view.form()
    raw_type = form.get("type")
    type_ = _type_asked(view, raw_type if isinstance(raw_type, str) else None)
    if type_ is None:
        return view.render("channel_types.html", types=TYPES, status=400)
    inputs = _inputs(type_)
    t = translator(view.language)
    body, typed = read_form(form, inputs, None, set(), t)
    raw_id = form.get("id")
    channel_id = raw_id.strip() if isinstance(raw_id, str) else ""
    if typed.errors:
        return _form(view, type_, detail=None, typed=typed, status=400, channel_id=channel_id)
    try:
        created = await view.call(*CREATE, body={"id": channel_id, "type": type_, **body})
    except DomainError as exc:
        general = _errors(exc, type_, inputs, typed)
        return _form(
            view,
            type_,
            detail=None,
            typed=typed,
            general=general,
            status=status_of(exc),
            channel_id=channel_id,
        )
    return redirect(f"{ROOT}/channels/{created['id']}?done=created")


def _errors(exc: DomainError, type_: str, inputs: list[Input], typed: Typed) -> list[str]:
    """Put the API's errors next to their inputs; those of no input are for the form."""
    known = _known(inputs)
    general: list[str] = []
    details = exc.details
    if exc.code == "channel_exists":
        typed.errors["id"] = exc.message
        return general
    if isinstance(details, dict) and isinstance(details.get("fields"), list):
        for name in details["fields"]:  # credentials_required
            where = field_of(str(name), type_, known)
            if where is not None:
                typed.errors.setdefault(where, exc.message)
        if not typed.errors:
            general.append(exc.message)
        return general
    if isinstance(details, list):
        for item in details:
            if not isinstance(item, dict):
                continue
            message = str(item.get("message", ""))
            where = field_of(item.get("field"), type_, known)
            if where is None:
                general.append(message)
            else:
                typed.errors[where] = (
                    f"{typed.errors[where]} {message}" if where in typed.errors else message
                )
        return general
    return [exc.message]


@pages.get("/channels/{id}", needs=ONE)
async def channel_page(view: View) -> web.StreamResponse:
    detail = await view.call(*ONE, params={"id": view.param("id")})
    done = view.request.query.get("done", "")
    notice = {
        "created": "channels.created",
        "saved": "channels.saved",
        "unchanged": "channels.unchanged",
    }.get(done)
    if detail["source"] == "config" or not view.allows(*CHANGE):
        return view.render(
            "channel_view.html",
            detail=detail,
            urls=urls(view, detail),
            public=base_url(view)[1],
            settings_rows=_setting_rows(detail["settings"]),
        )
    return _form(view, detail["type"], detail=detail, notice=notice)


def _setting_rows(settings: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in settings.items():
        if key in ("id", "type") and not prefix:
            continue
        if isinstance(value, dict) and value and key != "zns_templates":
            rows.extend(_setting_rows(value, f"{prefix}{key}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            rows.append((prefix + key, ", ".join(str(v.get("id", v)) for v in value)))
        else:
            rows.append((prefix + key, shown(value).replace("\n", ", ")))
    return rows


@pages.post("/channels/{id}", needs=CHANGE)
async def change_channel(view: View) -> web.StreamResponse:
    channel_id = view.param("id")
    detail = await view.call(*ONE, params={"id": channel_id})
    type_ = detail["type"]
    if detail["source"] == "config":  # the API refuses it (409 channel_in_config)
        await view.call(*CHANGE, params={"id": channel_id}, body={})
    inputs = _inputs(type_)
    t = translator(view.language)
    form = await view.form()
    patch, typed = read_form(form, inputs, detail["settings"], set(detail["secrets"]), t)
    if typed.errors:
        return _form(view, type_, detail=detail, typed=typed, status=400)
    if not patch:
        return redirect(f"{ROOT}/channels/{channel_id}?done=unchanged")
    try:
        await view.call(*CHANGE, params={"id": channel_id}, body=patch)
    except DomainError as exc:
        general = _errors(exc, type_, inputs, typed)
        return _form(
            view, type_, detail=detail, typed=typed, general=general, status=status_of(exc)
        )
    return redirect(f"{ROOT}/channels/{channel_id}?done=saved")


@pages.get("/channels/{id}/delete", needs=REMOVE)
async def confirm_delete(view: View) -> web.StreamResponse:
    detail = await view.call(*ONE, params={"id": view.param("id")})
    return view.render("channel_delete.html", detail=detail)


@pages.post("/channels/{id}/delete", needs=REMOVE)
async def delete_channel(view: View) -> web.StreamResponse:
    await view.call(*REMOVE, params={"id": view.param("id")})
    return redirect(f"{ROOT}/channels?done=deleted")
