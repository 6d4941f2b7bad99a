"""Canned replies: ``/v1/templates``. Admin and integration tokens manage them; every
token reads them (agents pick one to send)."""

from __future__ import annotations

from typing import Annotated, cast

from pydantic import BaseModel, Field, model_validator

from gateway.api.auth import MANAGE
from gateway.api.schemas import In, MessageText, OutgoingParts
from gateway.api.spec import Operations, Req
from kernel.errors import NotFound
from kernel.ids import ulid
from kernel.models import Template, Text, utcnow

TAG = "templates"
operations = Operations()

Language = Annotated[
    str,
    Field(
        min_length=2,
        max_length=35,
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        description="A language tag: `vi`, `en`, `vi-VN`.",
    ),
]


class TemplateBody(In):
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    language: Language = "vi"
    text: MessageText | None = None
    parts: OutgoingParts | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TemplateBody:
        if (self.text is None) == (self.parts is None):
            raise ValueError("give either text or parts")
        if self.text is not None and not self.text.strip():
            raise ValueError("text is empty")
        if not self.name.strip():
            raise ValueError("name is empty")
        return self


class TemplateList(BaseModel):
    items: list[Template]


class TemplateQuery(In):
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


def _template(body: TemplateBody, template_id: str, created: Template | None) -> Template:
    now = utcnow()
    return Template(
        id=template_id,
        name=body.name.strip(),
        language=body.language.lower(),
        text=body.text,
        parts=body.parts,
        created_at=created.created_at if created is not None else now,
        updated_at=now,
    )


async def _existing(req: Req) -> Template:
    found = await req.ctx.store.templates.get(req.param("id"))
    if found is None:
        raise NotFound(f"template {req.param('id')} not found", code="template_not_found")
    return found


@operations.add(
    "GET",
    "/v1/templates",
    summary="List canned replies (every language variant), or the variants of one name",
    tag=TAG,
    query=TemplateQuery,
    response=TemplateList,
)
async def list_templates(req: Req) -> TemplateList:
    q = cast(TemplateQuery, req.query)
    return TemplateList(items=await req.ctx.store.templates.all(q.name))


@operations.add(
    "POST",
    "/v1/templates",
    summary="Create a canned reply",
    description="`text` or `parts` may hold `{{variables}}`: `{{contact.display_name}}`, "
    "`{{contact.email}}`, `{{contact.phone}}`, `{{agent.name}}`, `{{agent.id}}`, or any "
    "name the sender gives a value for. Templates with the same `name` and another "
    "`language` are its language variants. 409 `template_exists` for a name and language "
    "taken.",
    tag=TAG,
    scopes=MANAGE,
    body=TemplateBody,
    response=Template,
    status=201,
    errors=(409, 422),
)
async def create_template(req: Req) -> Template:
    template = _template(cast(TemplateBody, req.body), "tpl_" + ulid(), None)
    await req.ctx.store.templates.put(template, new=True)
    return template


@operations.add(
    "GET",
    "/v1/templates/{id}",
    summary="Get a canned reply",
    tag=TAG,
    response=Template,
    errors=(404,),
)
async def get_template(req: Req) -> Template:
    return await _existing(req)


@operations.add(
    "PUT",
    "/v1/templates/{id}",
    summary="Replace a canned reply",
    tag=TAG,
    scopes=MANAGE,
    body=TemplateBody,
    response=Template,
    errors=(404, 409, 422),
)
async def put_template(req: Req) -> Template:
    current = await _existing(req)
    template = _template(cast(TemplateBody, req.body), current.id, current)
    if not await req.ctx.store.templates.put(template, new=False):
        raise NotFound(f"template {current.id} not found", code="template_not_found")
    return template


@operations.add(
    "DELETE",
    "/v1/templates/{id}",
    summary="Delete a canned reply",
    tag=TAG,
    scopes=MANAGE,
    status=204,
    errors=(404,),
)
async def delete_template(req: Req) -> None:
    if not await req.ctx.store.templates.delete(req.param("id")):
        raise NotFound(f"template {req.param('id')} not found", code="template_not_found")
