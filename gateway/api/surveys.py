"""Survey links: the page a customer answers a survey on (``GET /surveys/{token}``, answered
by ``POST /surveys/{token}``), and a conversation's survey for the helpdesk.

The page is plain HTML with a form: it works without JavaScript. It needs no session and
no cookie: the signed, expiring token in its address is the only thing that names the
survey, so a form posted from another site can only answer a survey whose link it
already has (CSRF-safe by construction). Everything it shows that came from a customer is
escaped; its language is the conversation's (Vietnamese or English).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.api.spec import Operations, Req
from gateway.domain.surveys import SCALES
from gateway.store.records import SurveyRecord
from kernel.errors import NotFound
from kernel.models import Survey
from kernel.text import clean_text
from kernel.texts import system_text

operations = Operations()
COMMENT_MAX = 2000
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",  # the address is the key to the survey
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;"
    "color:#222}fieldset{border:1px solid #ccc;border-radius:8px;margin:0 0 1rem;padding:1rem}"
    "label.score{display:inline-block;margin:.25rem .5rem .25rem 0}"
    "textarea{width:100%;min-height:6rem}button{padding:.5rem 1.5rem}"
    ".note{background:#fff4d6;padding:.5rem 1rem;border-radius:6px}"
)


def _language(survey: SurveyRecord | None) -> str:
    lang = (survey.language or "") if survey is not None else ""
    return "vi" if lang.lower().startswith("vi") else "en"


def _page(status: int, language: str, body: str) -> web.Response:
    title = html.escape(system_text("survey_title", language))
    text = (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{title}</h1>{body}</main></body></html>"
    )
    return web.Response(
        status=status, text=text, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


def _note(key: str, language: str) -> str:
    return f'<p class="note" role="status">{html.escape(system_text(key, language))}</p>'


def _given(survey: SurveyRecord, question: str, language: str) -> str:
    label = html.escape(system_text(f"survey_{question}", language))
    return f"<p>{label} <strong>{survey.score(question)}</strong></p>"


def _summary(survey: SurveyRecord, language: str) -> str:
    """What the customer answered; their comment as text."""
    blocks = [_given(survey, q, language) for q in survey.asked() if survey.score(q) is not None]
    if survey.comment is not None:
        blocks.append(f"<blockquote>{html.escape(survey.comment)}</blockquote>")
    return "".join(blocks)


def _form(survey: SurveyRecord, language: str, note: str = "") -> str:
    blocks = [note]
    for question in survey.asked():
        label = html.escape(system_text(f"survey_{question}", language))
        if survey.score(question) is not None:
            blocks.append(_given(survey, question, language))
            continue
        low, high = SCALES[question]
        scores = "".join(
            f'<label class="score"><input type="radio" name="{question}" value="{n}" '
            f"required> {n}</label>"
            for n in range(low, high + 1)
        )
        blocks.append(f"<fieldset><legend>{label}</legend>{scores}</fieldset>")
    if survey.comment is None:
        blocks.append(
            f'<p><label for="comment">{html.escape(system_text("survey_comment_label", language))}'
            f'</label><br><textarea id="comment" name="comment" maxlength="{COMMENT_MAX}">'
            "</textarea></p>"
        )
    send = html.escape(system_text("survey_send", language))
    return f'<form method="post">{"".join(blocks)}<button type="submit">{send}</button></form>'


def read_form(form: Mapping[str, Any]) -> tuple[dict[str, int], str | None, bool]:
    """(scores on their scales, the comment NFC and trimmed, whether anything was out of
    range or too long) from the page's form; fields not given are left out."""
    scores: dict[str, int] = {}
    bad = False
    for question, (low, high) in SCALES.items():
        value = form.get(question)
        if value is None or value == "":
            continue
        text = value if isinstance(value, str) else ""
        if not (text.isascii() and text.isdigit() and len(text) <= 2 and low <= int(text) <= high):
            bad = True
            continue
        scores[question] = int(text)
    raw = form.get("comment")
    comment = clean_text(raw).strip() if isinstance(raw, str) else None
    if comment is not None and len(comment) > COMMENT_MAX:
        bad = True
    return scores, comment or None, bad


_SHOWN = {"late": (410, "survey_closed"), "unknown": (404, "survey_invalid")}


@operations.add(
    "GET",
    "/surveys/{token}",
    summary="The survey page of a signed survey link (HTML, works without JavaScript)",
    tag="surveys",
    scopes=None,
    raw=True,
    content_type="text/html",
    errors=(404, 410),
)
async def survey_page(req: Req) -> web.Response:
    state, survey = await req.ctx.surveys.view(req.param("token"))
    language = _language(survey)
    if state in _SHOWN:
        status, key = _SHOWN[state]
        return _page(status, language, _note(key, language))
    assert survey is not None
    if state == "answered":
        return _page(200, language, _note("survey_already", language) + _summary(survey, language))
    return _page(200, language, _form(survey, language))


@operations.add(
    "POST",
    "/surveys/{token}",
    summary="Answer a survey (a form: csat, nps, ces, comment)",
    tag="surveys",
    scopes=None,
    raw=True,
    content_type="text/html",
    errors=(400, 404, 409, 410, 413),
)
async def survey_answer(req: Req) -> web.Response:
    token = req.param("token")
    scores, comment, bad = read_form(await req.request.post())
    if bad:
        state, survey = await req.ctx.surveys.view(token)
        language = _language(survey)
        if state != "open" or survey is None:
            status, key = _SHOWN.get(state, (409, "survey_already"))
            return _page(status, language, _note(key, language))
        return _page(400, language, _form(survey, language, _note("survey_missing", language)))
    outcome, survey = await req.ctx.surveys.answer(token, scores, comment)
    language = _language(survey)
    if outcome == "answered" and survey is not None:
        return _page(200, language, _note("survey_done", language) + _summary(survey, language))
    if outcome == "repeated":
        return _page(409, language, _note("survey_already", language))
    if outcome == "incomplete" and survey is not None:
        return _page(400, language, _form(survey, language, _note("survey_missing", language)))
    status, key = _SHOWN.get(outcome, (404, "survey_invalid"))
    return _page(status, language, _note(key, language))


@operations.add(
    "GET",
    "/v1/conversations/{id}/survey",
    summary="The conversation's satisfaction survey: when and how it was sent, or why it "
    "was skipped, and its answers",
    tag="surveys",
    response=Survey,
    errors=(404,),
)
async def conversation_survey(req: Req) -> Survey:
    found = await req.ctx.surveys.of_conversation(req.param("id"))
    if found is None:
        raise NotFound("this conversation has no survey", code="survey_not_found")
    return found.model()
