"""Agents and their presence."""

from __future__ import annotations

import re
from typing import cast

from gateway.api.auth import MANAGE
from gateway.api.errors import Forbidden
from gateway.api.schemas import AgentBody, PageQuery, PresenceBody
from gateway.api.spec import Operations, Req
from kernel.errors import Invalid, Malformed, NotFound
from kernel.ids import AgentId
from kernel.models import Agent, Presence
from kernel.pages import Page

TAG = "agents"
operations = Operations()
_ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")


def _agent_id(req: Req) -> AgentId:
    value = req.param("id")
    if not _ID_OK.match(value):
        raise Malformed(
            "agent ids are 1-128 letters, digits, '_', '.', '@' or '-'", code="invalid_id"
        )
    return AgentId(value)


@operations.add(
    "GET", "/v1/agents", summary="List agents", tag=TAG, query=PageQuery, response=Page[Agent]
)
async def list_agents(req: Req) -> Page[Agent]:
    q = cast(PageQuery, req.query)
    return await req.ctx.store.agents.page(q.cursor, q.limit)


@operations.add(
    "GET", "/v1/agents/{id}", summary="Get an agent", tag=TAG, response=Agent, errors=(400, 404)
)
async def get_agent(req: Req) -> Agent:
    agent = await req.ctx.store.agents.get(_agent_id(req))
    if agent is None:
        raise NotFound(f"agent {req.param('id')} not found", code="agent_not_found")
    return agent


@operations.add(
    "PUT",
    "/v1/agents/{id}",
    summary="Create or replace an agent (201 when created)",
    tag=TAG,
    scopes=MANAGE,
    body=AgentBody,
    response=Agent,
    errors=(422,),
    also=(201,),
)
async def put_agent(req: Req) -> tuple[Agent, int]:
    body = cast(AgentBody, req.body)
    agent_id = _agent_id(req)
    if body.id is not None and body.id != agent_id:
        raise Invalid(f"the body's id {body.id!r} does not match the path", code="id_mismatch")
    agent = Agent(
        id=agent_id,
        name=body.name,
        skills=body.skills,
        languages=body.languages,
        capacity=body.capacity,
        presence=body.presence or Presence.OFFLINE,
    )
    stored, created = await req.ctx.commands.put_agent(agent, keep_presence=body.presence is None)
    return stored, 201 if created else 200


@operations.add(
    "PUT",
    "/v1/agents/{id}/presence",
    summary="Set an agent's presence (agent tokens: their own only)",
    tag=TAG,
    body=PresenceBody,
    response=Agent,
    errors=(404,),
)
async def put_presence(req: Req) -> Agent:
    body = cast(PresenceBody, req.body)
    agent_id = _agent_id(req)
    principal = req.principal
    assert principal is not None
    if not principal.scopes & MANAGE and principal.agent_id != agent_id:
        raise Forbidden("agent tokens may only set their own presence", code="not_your_agent")
    return await req.ctx.commands.set_presence(agent_id, body.status)
