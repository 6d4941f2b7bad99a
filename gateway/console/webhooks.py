"""Webhook endpoints: the list, adding one (its signing secret shown once, on the answer
page only), rotating the secret (the same rule), removing one, the delivery log of each
with its attempts, and sending deliveries again."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.console.pages import ROOT, Pages, View, redirect
from gateway.console.texts import register, translator
from gateway.console.zones import DEFAULT_ZONE, zone
from kernel.errors import DomainError, Invalid, Malformed

pages = Pages()
LIST = ("GET", "/v1/webhooks")
CREATE = ("POST", "/v1/webhooks")
ONE = ("GET", "/v1/webhooks/{id}")
PATCH = ("PATCH", "/v1/webhooks/{id}")
DELETE = ("DELETE", "/v1/webhooks/{id}")
ROTATE = ("POST", "/v1/webhooks/{id}/rotate")
LOG = ("GET", "/v1/webhooks/{id}/deliveries")
REPLAY = ("POST", "/v1/webhooks/{id}/replay")
OUTCOMES = ("succeeded", "retry", "dead", "disabled")
PAGE_SIZE = "50"
# An event id as the API writes it (digits), for the replay form.
_EVENT_ID = re.compile(r"^\d{1,20}$")

register(
    {
        "webhooks.title": ("Webhook", "Webhooks"),
        "webhooks.endpoints": ("Các endpoint", "Endpoints"),
        "webhooks.empty": ("Chưa có endpoint nào.", "No endpoints yet."),
        "webhooks.url": ("URL", "URL"),
        "webhooks.events": ("Sự kiện", "Events"),
        "webhooks.events_hint": (
            "Các loại sự kiện, cách nhau bởi dấu phẩy; * là ký tự đại diện (message.*). "
            "Để trống: mọi sự kiện.",
            "Event types separated by commas; * is a wildcard (message.*). Empty: every event.",
        ),
        "webhooks.description": ("Mô tả", "Description"),
        "webhooks.source": ("Nguồn", "Origin"),
        "webhooks.source.api": ("API", "API"),
        "webhooks.source.config": ("Tệp cấu hình", "Config file"),
        "webhooks.source.bot": ("Bot (tệp cấu hình)", "Bot (config file)"),
        "webhooks.state": ("Trạng thái", "State"),
        "webhooks.enabled": ("Đang bật", "Enabled"),
        "webhooks.disabled": ("Đã tắt", "Disabled"),
        "webhooks.failing_since": ("Lỗi từ", "Failing since"),
        "webhooks.last_success": ("Thành công gần nhất", "Last success"),
        "webhooks.created": ("Tạo lúc", "Created"),
        "webhooks.add": ("Thêm endpoint", "Add an endpoint"),
        "webhooks.add_button": ("Thêm", "Add"),
        "webhooks.form_error": (
            "Chưa thêm được endpoint: hãy sửa các ô được đánh dấu.",
            "The endpoint was not added: correct the fields marked.",
        ),
        "webhooks.log": ("Nhật ký gửi", "Delivery log"),
        "webhooks.open_log": ("Nhật ký", "Log"),
        "webhooks.secret_title": ("Khóa ký của endpoint", "The endpoint's signing secret"),
        "webhooks.secret_once": (
            "Hãy sao chép khóa này ngay: nó sẽ không bao giờ được hiển thị lại.",
            "Copy it now: it will not be shown again.",
        ),
        "webhooks.secret_use": (
            "Dùng nó để kiểm tra chữ ký webhook-signature của mỗi lần gửi (Standard Webhooks).",
            "Use it to verify the webhook-signature of every delivery (Standard Webhooks).",
        ),
        "webhooks.copy": ("Sao chép", "Copy"),
        "webhooks.previous_until": (
            "Khóa cũ vẫn ký song song đến {until}.",
            "The previous secret keeps signing beside it until {until}.",
        ),
        "webhooks.rotate": ("Đổi khóa ký", "Rotate the secret"),
        "webhooks.enable": ("Bật", "Enable"),
        "webhooks.disable": ("Tắt", "Disable"),
        "webhooks.delete_title": ("Xóa endpoint?", "Delete the endpoint?"),
        "webhooks.delete_confirm": (
            "Endpoint {url} sẽ bị xóa cùng nhật ký gửi của nó. Không thể hoàn tác.",
            "The endpoint {url} is removed with its delivery log. This cannot be undone.",
        ),
        "webhooks.deleted": ("Đã xóa endpoint.", "The endpoint was deleted."),
        "webhooks.managed": (
            "Endpoint này do tệp cấu hình quản lý: chỉ có thể bật hoặc tắt ở đây.",
            "This endpoint is managed by the config file: it can only be enabled or disabled here.",
        ),
        "webhooks.refresh": ("Làm mới", "Refresh"),
        "webhooks.filter": ("Lọc theo kết quả", "Filter by outcome"),
        "webhooks.all": ("Tất cả", "All"),
        "webhooks.outcome.succeeded": ("Thành công", "Succeeded"),
        "webhooks.outcome.retry": ("Sẽ thử lại", "Retry"),
        "webhooks.outcome.dead": ("Thất bại hẳn", "Dead"),
        "webhooks.outcome.disabled": ("Endpoint tắt", "Disabled"),
        "webhooks.event_id": ("Mã sự kiện", "Event id"),
        "webhooks.attempt": ("Lần thử", "Attempt"),
        "webhooks.at": ("Lúc", "At"),
        "webhooks.status": ("Mã HTTP", "HTTP status"),
        "webhooks.latency": ("Độ trễ", "Latency"),
        "webhooks.outcome": ("Kết quả", "Outcome"),
        "webhooks.error": ("Lỗi / câu trả lời", "Error / answer"),
        "webhooks.no_attempts": ("Chưa có lần gửi nào.", "No deliveries yet."),
        "webhooks.replay": ("Gửi lại", "Replay"),
        "webhooks.replay_help": (
            "Gửi lại mọi sự kiện sau một mã sự kiện, hoặc từ một thời điểm; hoặc đưa mọi "
            "lần gửi thất bại hẳn trở lại hàng đợi. Endpoint phải đang bật.",
            "Send again every event after an event id, or from a time on; or put every "
            "dead delivery back in line. The endpoint must be enabled.",
        ),
        "webhooks.since_event_id": ("Sau mã sự kiện", "After event id"),
        "webhooks.since": ("Từ thời điểm", "From the time"),
        "webhooks.timezone": ("Múi giờ", "Time zone"),
        "webhooks.replay_dead": (
            "Gửi lại các lần gửi thất bại hẳn",
            "Replay the dead deliveries",
        ),
        "webhooks.replay_dead_hint": (
            "API gửi lại mọi lần gửi thất bại hẳn của endpoint này cùng lúc (không thể "
            "chọn riêng từng sự kiện).",
            "The API sends every dead delivery of this endpoint again at once (one event "
            "cannot be picked alone).",
        ),
        "webhooks.replayed": (
            "Đã đưa tối đa {n} lần gửi trở lại hàng đợi.",
            "Up to {n} deliveries were put back in line.",
        ),
        "webhooks.replay_what": (
            "Chọn một mã sự kiện hoặc một thời điểm (không cả hai).",
            "Give an event id or a time (not both).",
        ),
        "webhooks.bad_event_id": (
            "Mã sự kiện là một dãy chữ số.",
            "An event id is a string of digits.",
        ),
        "webhooks.bad_time": ("Thời điểm không hợp lệ.", "That time is not valid."),
        "webhooks.bad_zone": ("Múi giờ không rõ.", "Unknown time zone."),
        "webhooks.updated": ("Đã cập nhật endpoint.", "The endpoint was updated."),
        "webhooks.back": ("Về danh sách webhook", "Back to the webhooks"),
    }
)


# --- the list --------------------------------------------------------------------------


@pages.get("/webhooks", needs=LIST)
async def webhooks(view: View) -> web.StreamResponse:
    return await _list_page(view)


@pages.get("/webhooks/list", needs=LIST)
async def webhooks_list(view: View) -> web.StreamResponse:
    """The endpoints alone (htmx swaps them in when a webhook event comes)."""
    items = (await view.call(*LIST))["items"]
    return view.fragment("webhooks_list.html", items=items)


async def _list_page(
    view: View,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str = "",
) -> web.Response:
    items = (await view.call(*LIST))["items"]
    return view.render(
        "webhooks.html",
        status=status,
        items=items,
        values=values or {"url": "", "events": "", "description": ""},
        errors=errors or {},
        message=message,
        notice=_notice(view),
    )


def _t(view: View) -> Callable[..., str]:
    return translator(view.language)


def _notice(view: View) -> str:
    """What the redirect after a change asked to say (a word's key, never a value)."""
    done = view.request.query.get("done", "")
    if done == "replayed":
        count = view.request.query.get("n", "")
        return _t(view)("webhooks.replayed", n=count if count.isdigit() else "?")
    if done in ("deleted", "updated"):
        return _t(view)(f"webhooks.{done}")
    return ""


@pages.post("/webhooks", needs=CREATE)
async def add_webhook(view: View) -> web.StreamResponse:
    form = await view.form()
    values = {key: str(form.get(key, "")).strip() for key in ("url", "events", "description")}
    body: dict[str, Any] = {"url": values["url"]}
    events = [e for e in re.split(r"[\s,]+", values["events"]) if e]
    if events:
        body["events"] = events
    if values["description"]:
        body["description"] = values["description"]
    try:
        created = await view.call(*CREATE, body=body)
    except (Malformed, Invalid) as exc:
        errors = _field_errors(exc, default="url")
        return await _list_page(
            view,
            status=400 if isinstance(exc, Malformed) else 422,
            values=values,
            errors=errors,
            message=_t(view)("webhooks.form_error"),
        )
    # The one place the secret is ever shown: this answer (never a redirect, a cookie or
    # another page).
    return view.render("webhooks_secret.html", endpoint=created, secret=created["secret"])


def _field_errors(exc: DomainError, *, default: str) -> dict[str, str]:
    """The API's complaints by form field (`events.0` is the events field)."""
    found: dict[str, str] = {}
    if isinstance(exc.details, list):
        for item in exc.details:
            if isinstance(item, dict):
                name = str(item.get("field") or default).split(".", 1)[0]
                found.setdefault(name, str(item.get("message", "")))
    if not found:
        found[default] = exc.message
    return found


# --- one endpoint: its log, rotation, replay, removal ------------------------------------


@pages.get("/webhooks/{id}", needs=LOG)
async def webhook(view: View) -> web.StreamResponse:
    endpoint = await view.call(*ONE, params={"id": view.param("id")})
    outcome = _outcome(view)
    log = await _log(view, outcome, None)
    return view.render(
        "webhook.html",
        endpoint=endpoint,
        outcome=outcome,
        outcomes=OUTCOMES,
        log=log,
        more=_more_url(endpoint["id"], outcome, log.get("next_cursor")),
        replay={"since_event_id": "", "since": "", "tz": DEFAULT_ZONE},
        errors={},
        notice=_notice(view),
    )


@pages.get("/webhooks/{id}/deliveries", needs=LOG)
async def webhook_deliveries(view: View) -> web.StreamResponse:
    """The next rows of the log (the "more" link swaps them in for itself)."""
    endpoint_id = view.param("id")
    outcome = _outcome(view)
    log = await _log(view, outcome, view.request.query.get("cursor") or None)
    return view.fragment(
        "webhook_rows.html",
        log=log,
        more=_more_url(endpoint_id, outcome, log.get("next_cursor")),
    )


def _outcome(view: View) -> str:
    value = view.request.query.get("outcome", "")
    return value if value in OUTCOMES else ""


async def _log(view: View, outcome: str, cursor: str | None) -> dict[str, Any]:
    query = {"limit": PAGE_SIZE, "outcome": outcome}
    if cursor:
        query["cursor"] = cursor
    page: dict[str, Any] = await view.call(*LOG, params={"id": view.param("id")}, query=query)
    return page


def _more_url(endpoint_id: str, outcome: str, cursor: str | None) -> str | None:
    if not cursor:
        return None
    query = {"cursor": cursor, **({"outcome": outcome} if outcome else {})}
    return f"{ROOT}/webhooks/{endpoint_id}/deliveries?{urlencode(query)}"


def _back(endpoint_id: str, **query: str) -> str:
    return f"{ROOT}/webhooks/{endpoint_id}?{urlencode(query)}"


@pages.post("/webhooks/{id}/rotate", needs=ROTATE)
async def rotate(view: View) -> web.StreamResponse:
    endpoint_id = view.param("id")
    endpoint = await view.call(*ONE, params={"id": endpoint_id})
    rotated = await view.call(*ROTATE, params={"id": endpoint_id}, body={})
    return view.render(
        "webhooks_secret.html",
        endpoint=endpoint,
        secret=rotated["secret"],
        previous_valid_until=rotated["previous_valid_until"],
    )


@pages.post("/webhooks/{id}/enabled", needs=PATCH)
async def set_enabled(view: View) -> web.StreamResponse:
    endpoint_id = view.param("id")
    enabled = (await view.form()).get("enabled") == "true"
    await view.call(*PATCH, params={"id": endpoint_id}, body={"enabled": enabled})
    return redirect(_back(endpoint_id, done="updated"))


@pages.get("/webhooks/{id}/delete", needs=DELETE)
async def confirm_delete(view: View) -> web.StreamResponse:
    endpoint = await view.call(*ONE, params={"id": view.param("id")})
    return view.render("webhooks_delete.html", endpoint=endpoint)


@pages.post("/webhooks/{id}/delete", needs=DELETE)
async def delete(view: View) -> web.StreamResponse:
    await view.call(*DELETE, params={"id": view.param("id")})
    return redirect(f"{ROOT}/webhooks?done=deleted")


@pages.post("/webhooks/{id}/replay", needs=REPLAY)
async def replay(view: View) -> web.StreamResponse:
    endpoint_id = view.param("id")
    form = await view.form()
    dead = form.get("dead") == "true"
    values = {
        "since_event_id": str(form.get("since_event_id", "")).strip(),
        "since": str(form.get("since", "")).strip(),
        "tz": str(form.get("tz", "") or DEFAULT_ZONE).strip(),
    }
    errors: dict[str, str] = {}
    body: dict[str, Any] = {"dead": dead}
    if values["since_event_id"] and values["since"]:
        errors["since"] = _t(view)("webhooks.replay_what")
    elif values["since_event_id"]:
        if _EVENT_ID.match(values["since_event_id"]):
            body["since_event_id"] = values["since_event_id"]
        else:
            errors["since_event_id"] = _t(view)("webhooks.bad_event_id")
    elif values["since"]:
        tz = zone(values["tz"])
        if tz is None:
            errors["tz"] = _t(view)("webhooks.bad_zone")
        else:
            try:
                at = datetime.fromisoformat(values["since"])
            except ValueError:
                errors["since"] = _t(view)("webhooks.bad_time")
            else:
                body["since"] = (at if at.tzinfo else at.replace(tzinfo=tz)).isoformat()
    elif not dead:
        errors["since_event_id"] = _t(view)("webhooks.replay_what")
    if not errors:
        try:
            done = await view.call(*REPLAY, params={"id": endpoint_id}, body=body)
        except Malformed as exc:
            errors = _field_errors(exc, default="since_event_id")
        else:
            return redirect(_back(endpoint_id, done="replayed", n=str(done["replayed"])))
    endpoint = await view.call(*ONE, params={"id": endpoint_id})
    log = await _log(view, "", None)
    return view.render(
        "webhook.html",
        status=400,
        endpoint=endpoint,
        outcome="",
        outcomes=OUTCOMES,
        log=log,
        more=_more_url(endpoint_id, "", log.get("next_cursor")),
        replay=values,
        errors=errors,
        notice="",
    )
