"""Human hand-off: who answers a session, and the operator's endpoints.

A session's mode is `assistant` (the assistant answers) or `human` (a person does). It turns
`human` when the support agent escalates (a successful call of one of `handoff_tools`, by
default escalate_to_human) or when an operator takes it over. While it is `human`, the
customer's messages are stored and queued and the assistant stays silent; operators (operator
keys of the same tenant) list the queue with each escalation's summary, read a session, reply
(an assistant message whose `author` is the operator), and hand the session back.

The hand-off is kept in the session's metadata under `handoff`: reason, summary, by, at.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from llmos.agents.events import ToolResultEvent
from llmos.errors import UnknownTenantError
from llmos.llm.messages import AssistantMessage, ToolCall
from llmos.memory.models import Entry, SessionInfo, StoredMessage, TurnRecord
from llmos.memory.store import SessionStore
from llmos.server.auth import Authenticator, Identity, require_role
from llmos.server.errors import APIError
from llmos.server.sessions_api import (
    MessageOut,
    SessionDetail,
    SessionOut,
    parse_body,
    session_detail,
    session_out,
    store_errors,
)
from llmos.server.turns import TurnHub, TurnLog, WireEvent

HANDOFF_KEY = "handoff"
HUMAN_NOTE = "A person from our team has taken over this conversation and will answer here."


class Handoff:
    """Changes a session's mode and records why; watches turns for escalations.

    note: what the customer reads instead of the assistant's answer while a person answers.
    """

    def __init__(self, hub: TurnHub, tools: list[str], note: str = HUMAN_NOTE) -> None:
        self.hub = hub
        self.tools = set(tools)
        self.note = note

    async def take_over(self, info: SessionInfo, *, by: str, reason: str, summary: str = "") -> SessionInfo:
        handoff = {"reason": reason, "summary": summary, "by": by, "at": datetime.now(timezone.utc).isoformat()}
        info = await self.hub.memory.store.update_session(
            info.id, tenant=info.tenant, mode="human", metadata={**info.metadata, HANDOFF_KEY: handoff}
        )
        self.hub.changed(info.tenant, info.id)
        return info

    async def hand_back(self, info: SessionInfo) -> SessionInfo:
        metadata = {k: v for k, v in info.metadata.items() if k != HANDOFF_KEY}
        info = await self.hub.memory.store.update_session(info.id, tenant=info.tenant, mode="assistant", metadata=metadata)
        self.hub.changed(info.tenant, info.id)
        return info

    async def reply(self, info: SessionInfo, text: str, *, by: str) -> StoredMessage:
        """A person's reply, stored as an assistant message with its author."""
        (stored,) = await self.hub.memory.store.add_messages(
            info.id, [Entry(message=AssistantMessage(content=text), author=by)], tenant=info.tenant
        )
        self.hub.changed(info.tenant, info.id)
        return stored

    async def queue(self, info: SessionInfo, text: str) -> int:
        """Store a customer's message for the person who answers; the assistant does not run. Its seq."""
        turn = await self.hub.memory.store.begin_turn(info.id, text, tenant=info.tenant)
        await turn.finish([], TurnRecord(outcome="human"))
        self.hub.changed(info.tenant, info.id)
        return turn.user_message.seq

    async def observe(self, turn: TurnLog, event: Any, calls: dict[str, ToolCall]) -> WireEvent | None:
        """A turn's observer: an escalation tool that succeeded hands the session to a person."""
        if not isinstance(event, ToolResultEvent) or event.name not in self.tools or event.is_error:
            return None
        call = calls.get(event.call_id)
        arguments = _arguments(call)
        store = self.hub.memory.store
        info = await store.get_session(turn.session, tenant=turn.tenant)
        reason = str(arguments.get("reason") or "the assistant escalated")
        summary = str(arguments.get("summary") or "")
        await self.take_over(info, by=f"assistant:{event.agent}", reason=reason, summary=summary)
        return {"type": "handoff", "mode": "human", "reason": reason, "summary": summary, "message": self.note}


def _arguments(call: ToolCall | None) -> dict[str, Any]:
    if call is None:
        return {}
    try:
        arguments = json.loads(call.arguments)
    except json.JSONDecodeError:
        return {}
    return arguments if isinstance(arguments, dict) else {}


# --- the operator's endpoints ------------------------------------------------------------


class QueuedSession(SessionOut):
    handoff: dict[str, Any] | None = Field(None, description="Why the session is handed to a person: reason, summary, by, at.")
    waiting: int = Field(description="Customer messages since the last reply (the assistant's or a person's).")
    last_message: MessageOut | None = None


class QueueList(BaseModel):
    object: str = "list"
    data: list[QueuedSession]


class TakeOver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("taken over by an operator", max_length=2000)


class OperatorReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=100_000, description="What the customer reads.")


def operator_router(auth: Authenticator, hub: TurnHub, handoff: Handoff, max_body_bytes: int) -> APIRouter:
    router = APIRouter(prefix="/v1/operator")

    async def operator(request: Request) -> Identity:
        identity = await auth(request)
        require_role(identity, "operator")
        return identity

    async def session_of(identity: Identity, session_id: str) -> SessionInfo:
        with store_errors(session_id):
            return await hub.memory.store.get_session(session_id, tenant=identity.tenant)

    def name(identity: Identity) -> str:
        return f"operator:{identity.user or identity.key_id or 'local'}"

    @router.get("/sessions", response_model=QueueList)
    async def queue(request: Request, mode: str = "human", limit: int = 100) -> QueueList:
        """The tenant's sessions in `mode` (default: handed to a person), most recently updated first."""
        identity = await operator(request)
        if mode not in ("human", "assistant"):
            raise APIError(400, f"mode is {mode!r}; use 'human' or 'assistant'.", param="mode")
        store = hub.memory.store
        with store_errors():
            # The store lists by recency, not by mode: read a wide page, keep this mode's first `limit`.
            sessions = [s for s in await _tenant_sessions(store, identity.tenant, 10_000) if s.mode == mode][:limit]
            queued = []
            for info in sessions:
                messages = await store.messages(info.id, tenant=info.tenant)
                waiting = 0
                for m in reversed(messages):
                    if m.message.role != "user":
                        break
                    waiting += 1
                last = next((MessageOut.of(m) for m in reversed(messages) if m.message.content), None)
                queued.append(
                    QueuedSession(
                        **session_out(info, hub).model_dump(), handoff=info.metadata.get(HANDOFF_KEY),
                        waiting=waiting, last_message=last,
                    )
                )
        return QueueList(data=queued)

    @router.get("/sessions/{session_id}", response_model=SessionDetail)
    async def read(session_id: str, request: Request) -> SessionDetail:
        """The session with every message, tool calls and results included."""
        identity = await operator(request)
        info = await session_of(identity, session_id)
        with store_errors(session_id):
            return await session_detail(info, hub, everything=True)

    @router.post("/sessions/{session_id}/takeover", response_model=SessionOut)
    async def take_over(session_id: str, request: Request) -> SessionOut:
        identity = await operator(request)
        body = await parse_body(request, TakeOver, max_body_bytes)
        info = await session_of(identity, session_id)
        with store_errors(session_id):
            info = await handoff.take_over(info, by=name(identity), reason=body.reason)
        return session_out(info, hub)

    @router.post("/sessions/{session_id}/messages", response_model=MessageOut, status_code=201)
    async def reply(session_id: str, request: Request) -> MessageOut:
        """A person's reply, stored as an assistant message the customer reads, with its author."""
        identity = await operator(request)
        body = await parse_body(request, OperatorReply, max_body_bytes)
        info = await session_of(identity, session_id)
        if info.mode != "human":
            raise APIError(
                409,
                f"Session {session_id!r} is answered by the assistant: take it over first "
                f"(POST /v1/operator/sessions/{session_id}/takeover), so that the two do not talk at once.",
                code="session_not_handed_off",
            )
        with store_errors(session_id):
            stored = await handoff.reply(info, body.content, by=name(identity))
        return MessageOut.of(stored)

    @router.post("/sessions/{session_id}/handback", response_model=SessionOut)
    async def hand_back(session_id: str, request: Request) -> SessionOut:
        """The assistant answers the session's next messages again."""
        identity = await operator(request)
        info = await session_of(identity, session_id)
        with store_errors(session_id):
            info = await handoff.hand_back(info)
        return session_out(info, hub)

    return router


async def _tenant_sessions(store: SessionStore, tenant: str, limit: int) -> list[SessionInfo]:
    try:
        return await store.list_sessions(tenant=tenant, limit=limit)
    except UnknownTenantError:  # no session was ever stored for the tenant: an empty queue
        return []
