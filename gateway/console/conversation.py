"""One conversation: who and where, its reply window and SLA, the messages (kept live by
the event stream), the contact's timeline across channels, why routing sent it where it
went, and what the token may do with it: reply (text, files, a canned reply, choices),
assign, transfer, resolve, reopen."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from gateway.api.attachments import API_UPLOADS, checked_upload, file_response
from gateway.api.errors import Forbidden, status_of
from gateway.console.pages import ROOT, Pages, View, redirect
from gateway.console.shown import duration, own_file, web_link, when
from gateway.console.texts import register, translator
from gateway.domain.templates import VARIABLE
from kernel.errors import DomainError, Malformed, NotFound
from kernel.ids import ATTACHMENT_ID

pages = Pages()

CONVERSATION = ("GET", "/v1/conversations/{id}")
MESSAGES = ("GET", "/v1/conversations/{id}/messages")
SEND = ("POST", "/v1/conversations/{id}/messages")
ASSIGN = ("POST", "/v1/conversations/{id}/assign")
TRANSFER = ("POST", "/v1/conversations/{id}/transfer")
RESOLVE = ("POST", "/v1/conversations/{id}/resolve")
REOPEN = ("POST", "/v1/conversations/{id}/reopen")
ROUTING = ("GET", "/v1/conversations/{id}/routing")
CONTACT = ("GET", "/v1/contacts/{id}")
TIMELINE = ("GET", "/v1/contacts/{id}/timeline")
AGENTS = ("GET", "/v1/agents")
TEMPLATES = ("GET", "/v1/templates")
UPLOAD = ("POST", "/v1/attachments")
FILE = ("GET", "/v1/attachments/{id}")

# The newest messages shown (older ones stay in the API's pages).
SHOWN_MESSAGES = 200
MESSAGE_PAGES = 10
TIMELINE_SHOWN = 30
MAX_CHOICES = 13
_ATTACHMENT = re.compile(ATTACHMENT_ID)
# Variables the gateway fills in itself (domain/templates.py).
KNOWN_VARIABLES = frozenset(
    {"contact.display_name", "contact.email", "contact.phone", "agent.name", "agent.id"}
)

register(
    {
        "conv.title": ("Hội thoại", "Conversation"),
        "conv.state.queued": ("Đang chờ", "Queued"),
        "conv.state.assigned": ("Đã giao", "Assigned"),
        "conv.state.resolved": ("Đã giải quyết", "Resolved"),
        "conv.state.bot": ("Bot đang xử lý", "With a bot"),
        "conv.msg.received": ("Đã nhận", "Received"),
        "conv.msg.pending": ("Đang gửi", "Sending"),
        "conv.msg.sent": ("Đã gửi", "Sent"),
        "conv.msg.delivered": ("Đã chuyển tới", "Delivered"),
        "conv.msg.read": ("Đã xem", "Read"),
        "conv.msg.failed": ("Thất bại", "Failed"),
        "conv.presence.online": ("trực tuyến", "online"),
        "conv.presence.away": ("vắng mặt", "away"),
        "conv.presence.offline": ("ngoại tuyến", "offline"),
        "conv.routing.sticky": ("người phục vụ trước", "previous agent"),
        "conv.bytes": ("{n} byte", "{n} bytes"),
        "conv.contact": ("Khách hàng", "Contact"),
        "conv.channel": ("Kênh", "Channel"),
        "conv.status": ("Trạng thái", "Status"),
        "conv.assignee": ("Người phụ trách", "Assignee"),
        "conv.priority": ("Độ ưu tiên", "Priority"),
        "conv.skills": ("Kỹ năng", "Skills"),
        "conv.language": ("Ngôn ngữ", "Language"),
        "conv.subject": ("Tiêu đề", "Subject"),
        "conv.created": ("Bắt đầu", "Started"),
        "conv.bot": ("Bot đang giữ", "Held by bot"),
        "conv.window": ("Cửa sổ trả lời", "Reply window"),
        "conv.window.open": ("Mở", "Open"),
        "conv.window.tag_only": ("Chỉ gửi với thẻ (tag)", "Only with a message tag"),
        "conv.window.template_only": ("Chỉ gửi mẫu tin (template)", "Only a template"),
        "conv.window.closed": ("Đã đóng", "Closed"),
        "conv.window.unlimited": ("Không giới hạn", "Unlimited"),
        "conv.window.closes_at": ("đóng lúc {at}", "closes at {at}"),
        "conv.window.free_until": ("miễn phí đến {at}", "free until {at}"),
        "conv.window.unknown": ("Không rõ (kênh chưa chạy)", "Unknown (channel not running)"),
        "conv.sla": ("SLA", "SLA"),
        "conv.sla.first": ("Phản hồi đầu tiên trước", "First response due"),
        "conv.sla.next": ("Phản hồi tiếp theo trước", "Next response due"),
        "conv.sla.resolution": ("Giải quyết trước", "Resolution due"),
        "conv.sla.breached": ("Đã vi phạm", "Breached"),
        "conv.messages": ("Tin nhắn", "Messages"),
        "conv.no_messages": ("Chưa có tin nhắn.", "No messages yet."),
        "conv.older": (
            "Chỉ hiện {n} tin mới nhất.",
            "Only the newest {n} messages are shown.",
        ),
        "conv.inbound": ("Đến", "Inbound"),
        "conv.outbound": ("Đi", "Outbound"),
        "conv.author.contact": ("Khách hàng", "Customer"),
        "conv.author.agent": ("Nhân viên", "Agent"),
        "conv.author.bot": ("Bot", "Bot"),
        "conv.author.system": ("Hệ thống", "System"),
        "conv.failed": ("Gửi thất bại: {reason}", "Failed: {reason}"),
        "conv.part_failed": ("Tệp không tải được: {reason}", "File not fetched: {reason}"),
        "conv.picked": ("Đã chọn: {title}", "Picked: {title}"),
        "conv.location": ("Vị trí: {lat}, {lon}", "Location: {lat}, {lon}"),
        "conv.link": ("Liên kết", "Link"),
        "conv.choices_asked": ("Các lựa chọn:", "Choices offered:"),
        "conv.template_part": ("Mẫu tin {name}", "Template {name}"),
        "conv.download": ("Tải xuống", "Download"),
        "conv.not_ours": ("(tệp ở nơi khác, không mở từ đây)", "(file elsewhere, not opened here)"),
        "conv.reactions": ("Cảm xúc", "Reactions"),
        "conv.timeline": ("Dòng thời gian của khách", "Contact's timeline"),
        "conv.timeline_empty": ("Không có gì.", "Nothing yet."),
        "conv.this": ("hội thoại này", "this conversation"),
        "conv.routing": ("Vì sao định tuyến như vậy", "Why routing did what it did"),
        "conv.routing_none": ("Chưa có quyết định nào.", "No decision yet."),
        "conv.routing.chosen": ("Giao cho {agent}", "Given to {agent}"),
        "conv.routing.nobody": ("Chưa giao cho ai", "Given to nobody"),
        "conv.routing.policy": ("Cách chọn: {policy}", "Policy: {policy}"),
        "conv.routing.needs": ("Yêu cầu", "Needs"),
        "conv.routing.any": ("bất kỳ nhân viên nào", "any agent"),
        "conv.routing.step": ("Bước leo thang {n}", "Escalation step {n}"),
        "conv.routing.skipped": ("Bỏ qua", "Skipped"),
        "conv.routing.queue": (
            "Đang chờ: vị trí {position}, đã chờ {waited}",
            "In the queue: place {position}, waiting {waited}",
        ),
        "conv.routing.estimate": ("ước tính còn {wait}", "estimated {wait} more"),
        "conv.routing.rule": ("Quy tắc: {rule}", "Rule: {rule}"),
        "conv.reason.online": ("trực tuyến", "online"),
        "conv.reason.away": ("vắng mặt", "away"),
        "conv.reason.offline": ("ngoại tuyến", "offline"),
        "conv.reason.excluded": ("đã bị loại khỏi hội thoại này", "excluded from it"),
        "conv.reason.missing_skill": ("thiếu kỹ năng", "missing a skill"),
        "conv.reason.skill_level": ("kỹ năng chưa đủ mức", "skill level too low"),
        "conv.reason.language": ("không nói ngôn ngữ này", "does not speak the language"),
        "conv.reason.at_capacity": ("đã đầy", "at capacity"),
        "conv.reason.higher_load": ("đang bận hơn", "higher load"),
        "conv.reason.unknown": ("không rõ nhân viên", "unknown agent"),
        "conv.reply": ("Trả lời", "Reply"),
        "conv.reply.text": ("Nội dung", "Text"),
        "conv.reply.file": ("Tệp đính kèm", "File"),
        "conv.reply.send": ("Gửi", "Send"),
        "conv.template": ("Gửi câu trả lời mẫu", "Send a canned reply"),
        "conv.template.pick": ("Mẫu", "Template"),
        "conv.template.none": ("Chưa có câu trả lời mẫu.", "No canned replies yet."),
        "conv.template.vars": ("Biến", "Variables"),
        "conv.template.fill": ("Điền biến", "Fill in variables"),
        "conv.template.auto": (
            "Tự điền: {names}",
            "Filled in by the gateway: {names}",
        ),
        "conv.choices": ("Hỏi kèm lựa chọn", "Ask with choices"),
        "conv.choices.list": ("Lựa chọn (mỗi dòng một)", "Choices (one a line)"),
        "conv.refused": ("Không gửi được", "Not sent"),
        "conv.allowed": ("Được phép gửi: {what}", "What may go out: {what}"),
        "conv.allowed_nothing": ("Lúc này không được gửi gì.", "Nothing may go out now."),
        "conv.actions": ("Thao tác", "Actions"),
        "conv.assign": ("Giao", "Assign"),
        "conv.assign.agent": ("Nhân viên", "Agent"),
        "conv.force": ("Bỏ qua trạng thái và sức chứa", "Ignore presence and capacity"),
        "conv.transfer": ("Chuyển", "Transfer"),
        "conv.transfer.skills": (
            "hoặc về hàng chờ với kỹ năng (cách nhau bằng dấu phẩy)",
            "or back to the queue needing skills (comma-separated)",
        ),
        "conv.resolve": ("Đã giải quyết", "Resolve"),
        "conv.reopen": ("Mở lại", "Reopen"),
        "conv.pick": ("-- chọn --", "-- pick --"),
        "conv.none_agent": ("(không có)", "(none)"),
        "conv.error.choices": (
            "Cần từ 1 đến 13 lựa chọn, mỗi lựa chọn tối đa 80 ký tự.",
            "Give 1 to 13 choices of at most 80 characters each.",
        ),
        "conv.error.target": (
            "Chọn một nhân viên hoặc nhập kỹ năng, không phải cả hai.",
            "Pick an agent or type skills, not both.",
        ),
        "conv.error.missing": ("Cần giá trị cho biến này.", "This variable needs a value."),
    }
)


def _path(conv_id: str) -> str:
    return f"{ROOT}/conversations/{conv_id}"


async def _optional(view: View, op: tuple[str, str], **kw: Any) -> Any:
    """An API answer the page can do without (None when not allowed or not found)."""
    if not view.allows(*op):
        return None
    try:
        return await view.call(*op, **kw)
    except (NotFound, Forbidden):
        return None


async def _messages(view: View, conv_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The newest messages, oldest first, and whether older ones were left out."""
    shown: list[dict[str, Any]] = []
    cursor = ""
    total = 0
    for _ in range(MESSAGE_PAGES):
        page = await view.call(
            *MESSAGES, params={"id": conv_id}, query={"limit": "200", "cursor": cursor}
        )
        total += len(page["items"])
        shown = (shown + page["items"])[-SHOWN_MESSAGES:]
        cursor = page.get("next_cursor") or ""
        if not cursor:
            break
    return shown, bool(cursor) or total > SHOWN_MESSAGES


async def _agents(view: View) -> list[dict[str, Any]]:
    page = await _optional(view, AGENTS, query={"limit": "200"})
    return [] if page is None else list(page["items"])


async def _templates(view: View) -> list[dict[str, Any]]:
    found = await _optional(view, TEMPLATES)
    return [] if found is None else list(found["items"])


def variables_of(template: dict[str, Any]) -> list[str]:
    """The variables the sender gives for a template (those the gateway fills in left out)."""
    texts: list[str] = []
    if template.get("text"):
        texts.append(template["text"])
    for part in template.get("parts") or []:
        for key in ("text", "title"):
            if isinstance(part.get(key), str):
                texts.append(part[key])
        for choice in part.get("choices") or []:
            texts.append(choice.get("title", ""))
    seen: dict[str, None] = {}
    for text in texts:
        for match in VARIABLE.finditer(text):
            seen.setdefault(match.group(1))
    return [name for name in seen if name not in KNOWN_VARIABLES]


def auto_variables(template: dict[str, Any]) -> list[str]:
    found = []
    for text in [template.get("text") or ""] + [
        p.get("text") or "" for p in template.get("parts") or []
    ]:
        found += [m.group(1) for m in VARIABLE.finditer(text) if m.group(1) in KNOWN_VARIABLES]
    return list(dict.fromkeys(found))


async def _values(view: View, conv_id: str) -> dict[str, Any]:
    conversation = await view.call(*CONVERSATION, params={"id": conv_id})
    contact = await _optional(view, CONTACT, params={"id": conversation["contact_id"]})
    messages, cut = await _messages(view, conv_id)
    timeline = await _optional(
        view, TIMELINE, params={"id": conversation["contact_id"]}, query={"limit": "30"}
    )
    routing = await _optional(view, ROUTING, params={"id": conv_id})
    agents = await _agents(view)
    templates = await _templates(view)
    return {
        "conv": conversation,
        "contact": contact,
        "messages": messages,
        "cut": cut,
        "timeline": [] if timeline is None else timeline["items"][:TIMELINE_SHOWN],
        "routing": routing,
        "agents": agents,
        "agent_names": {a["id"]: a.get("name") or a["id"] for a in agents},
        "templates": templates,
        "template_vars": {t["id"]: variables_of(t) for t in templates},
    }


def _helpers() -> dict[str, Any]:
    return {
        "when": when,
        "duration": duration,
        "own_file": own_file,
        "web_link": web_link,
        "shown_messages": SHOWN_MESSAGES,
    }


async def _page(
    view: View,
    conv_id: str,
    *,
    status: int = 200,
    typed: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    problem: dict[str, Any] | None = None,
) -> web.Response:
    """The whole page; after a refused change, with what was typed, the errors by field
    and the refusal (``problem``: which form, the message, what would be allowed)."""
    values = await _values(view, conv_id)
    return view.render(
        "conversation.html",
        status=status,
        typed=typed or {},
        errors=errors or {},
        problem=problem,
        auto_variables=auto_variables,
        **values,
        **_helpers(),
    )


@pages.get("/conversations/{id}", needs=CONVERSATION)
async def conversation_page(view: View) -> web.StreamResponse:
    return await _page(view, view.param("id"))


@pages.get("/conversations/{id}/header", needs=CONVERSATION)
async def header_fragment(view: View) -> web.StreamResponse:
    conv_id = view.param("id")
    conversation = await view.call(*CONVERSATION, params={"id": conv_id})
    contact = await _optional(view, CONTACT, params={"id": conversation["contact_id"]})
    routing = await _optional(view, ROUTING, params={"id": conv_id})
    agents = await _agents(view)
    return view.fragment(
        "conversation_header.html",
        conv=conversation,
        contact=contact,
        routing=routing,
        agent_names={a["id"]: a.get("name") or a["id"] for a in agents},
        **_helpers(),
    )


@pages.get("/conversations/{id}/messages", needs=MESSAGES)
async def messages_fragment(view: View) -> web.StreamResponse:
    conv_id = view.param("id")
    conversation = await view.call(*CONVERSATION, params={"id": conv_id})
    contact = await _optional(view, CONTACT, params={"id": conversation["contact_id"]})
    messages, cut = await _messages(view, conv_id)
    agents = await _agents(view)
    return view.fragment(
        "conversation_messages.html",
        conv=conversation,
        contact=contact,
        messages=messages,
        cut=cut,
        agent_names={a["id"]: a.get("name") or a["id"] for a in agents},
        **_helpers(),
    )


@pages.get("/conversations/{id}/timeline", needs=CONVERSATION)
async def timeline_fragment(view: View) -> web.StreamResponse:
    conv_id = view.param("id")
    conversation = await view.call(*CONVERSATION, params={"id": conv_id})
    timeline = await _optional(
        view, TIMELINE, params={"id": conversation["contact_id"]}, query={"limit": "30"}
    )
    return view.fragment(
        "conversation_timeline.html",
        conv=conversation,
        timeline=[] if timeline is None else timeline["items"][:TIMELINE_SHOWN],
        **_helpers(),
    )


@pages.get("/conversations/{id}/template-fields", needs=TEMPLATES)
async def template_fields(view: View) -> web.StreamResponse:
    chosen = view.request.query.get("template_id", "")
    template = next((t for t in await _templates(view) if t["id"] == chosen), None)
    return view.fragment(
        "conversation_template_fields.html",
        tpl=template,
        names=variables_of(template) if template else [],
        auto=auto_variables(template) if template else [],
        typed={},
        errors={},
    )


@pages.get("/attachments/{id}", needs=FILE)
async def attachment(view: View) -> web.StreamResponse:
    """A file kept here, for the page's <img> and download links (the API's own URL needs
    a bearer token the browser does not have)."""
    attachment_id = view.param("id")
    if not _ATTACHMENT.fullmatch(attachment_id):
        raise NotFound(f"attachment {attachment_id} not found", code="attachment_not_found")
    return await file_response(view.ctx.attachments, attachment_id)


# --- changes -----------------------------------------------------------------------------


def _text(form: MultiDictProxy[Any], name: str) -> str:
    value = form.get(name)
    return value.replace("\r\n", "\n") if isinstance(value, str) else ""


def _field_errors(exc: Malformed, fields: dict[str, str]) -> dict[str, str]:
    """The API's errors by field, put on the form's fields (``fields``: a prefix of the
    API's field name -> the form's); what matches none goes under ``_``."""
    found: dict[str, str] = {}
    details = exc.details if isinstance(exc.details, list) else []
    for item in details:
        if not isinstance(item, dict):
            continue
        name = str(item.get("field", ""))
        message = str(item.get("message", ""))
        target = next((f for prefix, f in fields.items() if name.startswith(prefix)), "_")
        if target.endswith(".*"):
            target = target[:-1] + name.rsplit(".", 1)[-1]
        found.setdefault(target, message)
    if not found:
        found["_"] = exc.message
    return found


async def _refused(
    view: View, conv_id: str, form_name: str, exc: DomainError, typed: dict[str, Any]
) -> web.Response:
    """The page again, with the refusal shown on the form that was sent and the typed
    values kept."""
    errors: dict[str, str] = {}
    allowed = None
    window = None
    if isinstance(exc, Malformed) and exc.code == "validation_error":
        errors = _field_errors(
            exc,
            {
                "text": "text",
                "parts.0.text": "text",
                "parts.0.choices": "choices",
                "parts": "file",
                "variables": "var.*",
                "template_id": "template_id",
                "agent_id": "agent_id",
                "skills": "skills",
            },
        )
    elif exc.code == "missing_variable" and isinstance(exc.details, dict):
        t = translator(view.language)
        for name in exc.details.get("missing", []):
            errors[f"var.{name}"] = t("conv.error.missing")
    if exc.code == "window_closed" and isinstance(exc.details, dict):
        allowed = exc.details.get("allowed")
        window = exc.details.get("reply_window")
    problem = {
        "form": form_name,
        "code": exc.code,
        "message": exc.message,
        "allowed": allowed,
        "window": window,
    }
    return await _page(
        view, conv_id, status=status_of(exc), typed=typed, errors=errors, problem=problem
    )


async def _send(
    view: View, conv_id: str, form_name: str, body: dict[str, Any], typed: dict[str, Any]
) -> web.Response:
    # Each form carries a key of its own: posted twice (a double click, a reload), it is
    # sent once.
    key = (await view.form()).get("idempotency_key")
    headers = {"Idempotency-Key": key} if isinstance(key, str) and 0 < len(key) <= 255 else {}
    try:
        await view.call(*SEND, params={"id": conv_id}, body=body, headers=headers)
    except DomainError as exc:
        if exc.code != "idempotency_key_reused":  # else: this form was sent already
            return await _refused(view, conv_id, form_name, exc, typed)
    return redirect(_path(conv_id) + "#messages")


async def _keep_file(view: View, field: web.FileField) -> dict[str, Any]:
    """A file posted with the reply, taken and kept as the API's upload does: a part
    naming it."""
    if not view.allows(*UPLOAD):
        raise Forbidden("this token may not upload files", code="insufficient_scope")
    attachments = view.ctx.attachments
    found = checked_upload(
        field.file.read(attachments.max_bytes + 1),
        field.filename,
        field.content_type,
        max_bytes=attachments.max_bytes,
        types=view.ctx.settings.attachments.upload_types,
    )
    part = await attachments.save(API_UPLOADS, found.data, name=found.name, mime=found.mime)
    return {"type": part.type, "attachment_id": part.attachment_id}


@pages.post("/conversations/{id}/reply", needs=SEND)
async def reply(view: View) -> web.StreamResponse:
    conv_id = view.param("id")
    form = await view.form()
    text = _text(form, "text")
    typed = {"text": text}
    files = [f for f in form.getall("file", []) if isinstance(f, web.FileField) and f.filename]
    if not files:
        return await _send(view, conv_id, "reply", {"text": text}, typed)
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text.strip() else []
    try:
        for f in files[:19]:
            parts.append(await _keep_file(view, f))
    except DomainError as exc:
        if exc.code in ("attachment_too_large", "unsupported_type", "empty_file"):
            exc = Malformed(
                exc.message,
                code="validation_error",
                details=[{"field": "parts", "message": exc.message}],
            )
        return await _refused(view, conv_id, "reply", exc, typed)
    return await _send(view, conv_id, "reply", {"parts": parts}, typed)


@pages.post("/conversations/{id}/choices", needs=SEND)
async def reply_choices(view: View) -> web.StreamResponse:
    conv_id = view.param("id")
    form = await view.form()
    text = _text(form, "text")
    lines = [line.strip() for line in _text(form, "choices").split("\n") if line.strip()]
    typed = {"choices_text": text, "choices": "\n".join(lines)}
    if not 1 <= len(lines) <= MAX_CHOICES:
        t = translator(view.language)
        return await _refused(
            view,
            conv_id,
            "choices",
            Malformed(
                t("conv.error.choices"),
                code="validation_error",
                details=[{"field": "parts.0.choices", "message": t("conv.error.choices")}],
            ),
            typed,
        )
    part = {
        "type": "choices",
        "text": text,
        "choices": [{"id": f"c{n}", "title": title} for n, title in enumerate(lines, 1)],
    }
    return await _send(view, conv_id, "choices", {"parts": [part]}, typed)


@pages.post("/conversations/{id}/template", needs=SEND)
async def reply_template(view: View) -> web.StreamResponse:
    conv_id = view.param("id")
    form = await view.form()
    template_id = _text(form, "template_id").strip()
    variables = {
        key[4:]: value.replace("\r\n", "\n")
        for key, value in form.items()
        if key.startswith("var.") and isinstance(value, str) and value != ""
    }
    typed: dict[str, Any] = {"template_id": template_id}
    typed.update({f"var.{k}": v for k, v in variables.items()})
    body: dict[str, Any] = {"template_id": template_id or None, "variables": variables}
    return await _send(view, conv_id, "template", body, typed)


async def _change(
    view: View,
    conv_id: str,
    op: tuple[str, str],
    form_name: str,
    body: dict[str, Any] | None,
    typed: dict[str, Any],
) -> web.Response:
    try:
        await view.call(*op, params={"id": conv_id}, body=body)
    except DomainError as exc:
        return await _refused(view, conv_id, form_name, exc, typed)
    return redirect(_path(conv_id))


def _force(view: View, form: MultiDictProxy[Any]) -> bool:
    return form.get("force") == "1" and view.principal.is_admin


@pages.post("/conversations/{id}/assign", needs=ASSIGN)
async def assign(view: View) -> web.StreamResponse:
    form = await view.form()
    agent_id = _text(form, "agent_id").strip()
    body = {"agent_id": agent_id or None, "force": _force(view, form)}
    return await _change(view, view.param("id"), ASSIGN, "assign", body, {"agent_id": agent_id})


@pages.post("/conversations/{id}/transfer", needs=TRANSFER)
async def transfer(view: View) -> web.StreamResponse:
    conv_id = view.param("id")
    form = await view.form()
    agent_id = _text(form, "transfer_agent_id").strip()
    skills_text = _text(form, "skills")
    skills = [s.strip() for s in skills_text.split(",") if s.strip()]
    typed = {"transfer_agent_id": agent_id, "skills": skills_text}
    if bool(agent_id) == bool(skills):
        t = translator(view.language)
        exc = Malformed(
            t("conv.error.target"),
            code="validation_error",
            details=[{"field": "skills", "message": t("conv.error.target")}],
        )
        return await _refused(view, conv_id, "transfer", exc, typed)
    body: dict[str, Any] = {"agent_id": agent_id} if agent_id else {"skills": skills}
    body["force"] = _force(view, form)
    return await _change(view, conv_id, TRANSFER, "transfer", body, typed)


@pages.post("/conversations/{id}/resolve", needs=RESOLVE)
async def resolve(view: View) -> web.StreamResponse:
    return await _change(view, view.param("id"), RESOLVE, "status", None, {})


@pages.post("/conversations/{id}/reopen", needs=REOPEN)
async def reopen(view: View) -> web.StreamResponse:
    return await _change(view, view.param("id"), REOPEN, "status", None, {})
