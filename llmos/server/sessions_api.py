"""Sessions over HTTP: the native API, and server-side sessions on the OpenAI endpoint.

    POST   /v1/sessions                                   create (201)
    GET    /v1/sessions                                   the caller's sessions
    GET    /v1/sessions/{id}                              one, with its messages
    DELETE /v1/sessions/{id}
    POST   /v1/sessions/{id}/messages                     a turn, streamed as SSE events with ids
    POST   /v1/sessions/{id}/turns/{n}/retry              answer again turn n (unanswered or failed), streamed alike
    GET    /v1/sessions/{id}/messages?after=SEQ&wait=S    new messages (a person's reply), waiting for one
    GET    /v1/sessions/{id}/events                       follow a turn again (Last-Event-ID: what was missed)
    POST   /v1/sessions/{id}/cancel                       stop the running turn
    POST   /v1/sessions/{id}/approvals/{approval_id}      approve or deny a tool call

`POST /v1/chat/completions` with `X-LLMOS-Session: ID` runs the same turns: the client sends
only the new user message; the history comes from the session.

A session belongs to its key's tenant and, for a customer key, to the key's user: any other
id answers 404, whether it exists elsewhere or not. While a turn runs, another message answers
409 (or waits for it, when the store is set to wait: LLMOS_MEMORY_ON_BUSY=wait). A turn runs on
when its client goes away (llmos.server.turns); only `cancel` stops it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmos.agents.events import ErrorEvent, FinalEvent
from llmos.errors import (
    ConfigError,
    DatabaseUnavailableError,
    SessionBusyError,
    SessionExistsError,
    TurnAnsweredError,
    TurnStateError,
    UnknownSessionError,
    UnknownTenantError,
    UnknownTurnError,
    UnknownUserError,
)
from llmos.llm.model import Usage
from llmos.memory.models import SessionInfo, SessionMode, StoredMessage
from llmos.server import openai_api as oa
from llmos.server.auth import Authenticator, Identity, require_role
from llmos.server.body import read_body
from llmos.server.errors import APIError
from llmos.server.turns import TurnHub, TurnLog

if TYPE_CHECKING:
    from llmos.server.handoff import Handoff

SESSION_HEADER = "X-LLMOS-Session"
Body = TypeVar("Body", bound=BaseModel)


# --- bodies ------------------------------------------------------------------------------


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, max_length=200, description="Your id for it; default: a random one.")
    title: str = Field("", max_length=500)
    model: str | None = Field(None, description="Which served model answers (GET /v1/models); default: the first.")


class SessionOut(BaseModel):
    id: str
    object: str = "session"
    title: str
    user: str | None
    mode: SessionMode = Field(description="Who answers: 'assistant', or 'human' once a person has taken over.")
    model: str | None
    created_at: datetime
    updated_at: datetime
    turns: int
    running_turn: int | None = Field(None, description="The turn being answered now, if any (follow it at /events).")


class MessageOut(BaseModel):
    seq: int
    turn: int
    role: str
    content: str | None
    author: str | None = Field(None, description="The person who wrote it (an operator), when not the assistant.")
    citations: list[dict[str, Any]] = Field(default_factory=list)
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    name: str | None = Field(None, description="A tool result's tool.")
    created_at: datetime

    @classmethod
    def of(cls, stored: StoredMessage) -> MessageOut:
        m = stored.message
        return cls(
            seq=stored.seq,
            turn=stored.turn,
            role=m.role,
            content=m.content,
            author=stored.author,
            citations=stored.citations,
            tool_calls=[c.model_dump(mode="json") for c in getattr(m, "tool_calls", [])],
            name=getattr(m, "name", None),
            created_at=stored.created_at,
        )


class SessionDetail(SessionOut):
    messages: list[MessageOut]
    unanswered: list[int] = Field(
        default_factory=list, description="Turns whose message is stored but not answered (failed, cancelled or running)."
    )
    handoff: dict[str, Any] | None = Field(None, description="Operators only: why a person answers.")
    turns_done: list[TurnOut] = Field(default_factory=list, description="Operators only: what each turn's run did.")


class TurnOut(BaseModel):
    number: int
    status: str
    outcome: str = ""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None


SessionDetail.model_rebuild()


class SessionList(BaseModel):
    object: str = "list"
    data: list[SessionOut]


class MessageList(BaseModel):
    object: str = "list"
    mode: SessionMode
    running_turn: int | None
    data: list[MessageOut]


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=100_000)


class ApprovalAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool = Field(description="True runs the tool call; false denies it.")


class ApprovalOut(BaseModel):
    approval_id: str
    status: str


# --- helpers shared with the operator's endpoints ----------------------------------------


async def parse_body(request: Request, model: type[Body], limit: int) -> Body:
    """The JSON body as `model`, or a 400 / 413 that says what is wrong. An empty body is `{}`."""
    raw = await read_body(request, limit)
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]) or "body", e["msg"]) for e in exc.errors()]
        said = "; ".join(f"{where}: {what}" for where, what in problems[:5])
        raise APIError(400, f"Invalid request: {said}.", param=problems[0][0]) from None


def not_found(session_id: str) -> APIError:
    return APIError(
        404,
        f"There is no session {session_id!r} for this key. Create one with POST /v1/sessions, or list yours with GET /v1/sessions.",
        code="session_not_found",
        param="session_id",
    )


@contextmanager
def store_errors(session_id: str | None = None) -> Iterator[None]:
    """The session store's errors as API errors."""
    try:
        yield
    except UnknownTurnError as exc:
        raise APIError(404, f"{exc} GET /v1/sessions/{session_id} lists the unanswered turns.", code="turn_not_found") from None
    except UnknownSessionError:
        raise not_found(session_id or "") from None
    except SessionBusyError:
        raise busy(session_id or "") from None
    except SessionExistsError as exc:
        raise APIError(409, str(exc), code="session_exists", param="id") from None
    except TurnAnsweredError as exc:
        raise APIError(409, str(exc), code="turn_answered") from None
    except TurnStateError as exc:
        raise APIError(409, str(exc), code="turn_state") from None
    except DatabaseUnavailableError as exc:
        raise APIError(503, f"The session database is unavailable: {exc}", code="database_unavailable") from None
    except ConfigError as exc:
        raise APIError(400, str(exc)) from None


def busy(session_id: str, number: int | None = None) -> APIError:
    which = f" (turn {number})" if number else ""
    return APIError(
        409,
        f"Session {session_id!r} is answering another message{which}: one turn at a time. Wait for its final event "
        f"(follow it at GET /v1/sessions/{session_id}/events), or stop it with POST /v1/sessions/{session_id}/cancel, "
        "then send the message again.",
        code="session_busy",
    )


def session_out(info: SessionInfo, hub: TurnHub) -> SessionOut:
    running = hub.running(info.tenant, info.id)
    return SessionOut(
        id=info.id, title=info.title, user=info.user, mode=info.mode, model=info.metadata.get("model"),
        created_at=info.created_at, updated_at=info.updated_at, turns=info.turns,
        running_turn=running.number if running else None,
    )


async def session_detail(info: SessionInfo, hub: TurnHub, *, everything: bool) -> SessionDetail:
    """The session with its messages: all of them for an operator; what the customer reads otherwise."""
    turns = await hub.memory.store.turns(info.id, tenant=info.tenant)
    messages = [MessageOut.of(m) for t in turns for m in [t.user_message, *t.messages]]
    if not everything:
        messages = [m for m in messages if m.role in ("user", "assistant") and m.content]
        for m in messages:
            m.tool_calls = []
    return SessionDetail(
        **session_out(info, hub).model_dump(),
        messages=messages,
        unanswered=[t.number for t in turns if t.status != "answered"],
        handoff=info.metadata.get("handoff") if everything else None,
        turns_done=[
            TurnOut(
                number=t.number, status=t.status, outcome=t.record.outcome if t.record else "", error=t.error,
                tool_calls=[c.model_dump(mode="json") for c in t.record.tool_calls] if t.record else [],
            )
            for t in turns
        ] if everything else [],
    )


def sse_response(turn: TurnLog, after: int = -1) -> StreamingResponse:
    """The turn's events after index `after`, then the rest as they come; `id: TURN:INDEX`."""

    async def events() -> AsyncIterator[bytes]:
        async for item in turn.follow(after):
            if item is None:
                yield b": keep-alive\n\n"
                continue
            index, entry = item
            yield f"id: {turn.number}:{index}\ndata: {json.dumps(entry.data, ensure_ascii=False)}\n\n".encode()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-LLMOS-Turn": str(turn.number)},
    )


def parse_event_id(value: str) -> tuple[int, int]:
    number, _, index = value.strip().partition(":")
    if not (number.isdigit() and index.isdigit()):
        raise APIError(
            400, f"Last-Event-ID is {value!r}; it is the `id` of an event you received, like '3:17' (turn 3, event 17).",
            param="Last-Event-ID",
        )
    return int(number), int(index)


# --- the customer's endpoints --------------------------------------------------------------


class Sessions:
    """What the session endpoints share: who may see a session, and how a message is answered."""

    def __init__(
        self,
        auth: Authenticator,
        hub: TurnHub,
        handoff: Handoff,
        catalog: Mapping[str, Any],
        max_body_bytes: int,
    ) -> None:
        self.auth, self.hub, self.handoff, self.catalog = auth, hub, handoff, catalog
        self.max_body_bytes = max_body_bytes

    async def customer(self, request: Request) -> Identity:
        identity = await self.auth(request)
        require_role(identity, "customer")
        return identity

    async def owned(self, identity: Identity, session_id: str) -> SessionInfo:
        """The caller's session: its tenant's, and its user's. Anything else is not found."""
        with store_errors(session_id):
            info = await self.hub.memory.store.get_session(session_id, tenant=identity.tenant)
        if info.user != identity.user:
            raise not_found(session_id)
        return info

    async def start(self, info: SessionInfo, text: str, model: str, *, ask_approvals: bool = True) -> TurnLog:
        """Begin a turn of an assistant-mode session: 409 while another runs, or after waiting for it (by the store's on_busy)."""
        with store_errors(info.id):
            return await self.hub.start(
                self.catalog[model], text, tenant=info.tenant, session=info.id, user=info.user, ask_approvals=ask_approvals
            )

    def model_of(self, info: SessionInfo) -> str:
        model = info.metadata.get("model")
        if model in self.catalog:
            return model
        return next(iter(self.catalog))

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/v1/sessions")
        hub = self.hub

        @router.post("", response_model=SessionOut, status_code=201)
        async def create(request: Request) -> SessionOut:
            identity = await self.customer(request)
            body = await parse_body(request, SessionCreate, self.max_body_bytes)
            model = body.model or next(iter(self.catalog))
            if model not in self.catalog:
                raise APIError(
                    404, f"The model {model!r} does not exist here. This server serves: {', '.join(self.catalog)}.",
                    code="model_not_found", param="model",
                )
            with store_errors(body.id):
                info = await hub.memory.store.create_session(
                    body.id, tenant=identity.tenant, user=identity.user, title=body.title, metadata={"model": model}
                )
            return session_out(info, hub)

        @router.get("", response_model=SessionList)
        async def list_sessions(request: Request, limit: int = 100) -> SessionList:
            identity = await self.customer(request)
            with store_errors():
                try:
                    found = await hub.memory.store.list_sessions(tenant=identity.tenant, user=identity.user, limit=limit)
                except (UnknownTenantError, UnknownUserError):
                    found = []  # nothing was ever stored for them
            return SessionList(data=[session_out(s, hub) for s in found if s.user == identity.user])

        @router.get("/{session_id}", response_model=SessionDetail)
        async def get(session_id: str, request: Request) -> SessionDetail:
            info = await self.owned(await self.customer(request), session_id)
            with store_errors(session_id):
                return await session_detail(info, hub, everything=False)

        @router.delete("/{session_id}")
        async def delete(session_id: str, request: Request) -> dict[str, Any]:
            info = await self.owned(await self.customer(request), session_id)
            if (running := hub.running(info.tenant, info.id)) is not None:
                raise busy(session_id, running.number)
            with store_errors(session_id):
                await hub.memory.store.delete_session(session_id, tenant=info.tenant)
            hub.forget(info.tenant, info.id)
            return {"id": session_id, "object": "session", "deleted": True}

        @router.post("/{session_id}/messages", response_model=None)
        async def send(session_id: str, request: Request) -> StreamingResponse:
            """The turn's events as SSE. In a session a person answers, the message is queued for them."""
            info = await self.owned(await self.customer(request), session_id)
            body = await parse_body(request, MessageIn, self.max_body_bytes)
            if info.mode == "human":
                return await self._queued(info, body.content)
            return sse_response(await self.start(info, body.content, self.model_of(info)))

        @router.post("/{session_id}/turns/{number}/retry", response_model=None)
        async def retry(session_id: str, number: str, request: Request) -> StreamingResponse:
            """Answer again a turn whose run failed, was cancelled or was lost with its server: its stored
            message runs with the history before it; the events stream as for a new message."""
            info = await self.owned(await self.customer(request), session_id)
            if not number.isdigit() or int(number) < 1:
                raise APIError(
                    400, f"The turn is {number!r}; it is a turn's number, like 2 (GET /v1/sessions/{session_id} "
                    "lists the unanswered ones).", param="number",
                )
            if info.mode == "human":
                raise APIError(
                    409, f"A person answers session {session_id!r} now: its messages are theirs to answer, "
                    "not retried by the assistant.", code="session_handed_off",
                )
            with store_errors(info.id):
                turn = await hub.retry(
                    self.catalog[self.model_of(info)], int(number), tenant=info.tenant, session=info.id, user=info.user
                )
            return sse_response(turn)

        @router.get("/{session_id}/messages", response_model=MessageList)
        async def new_messages(session_id: str, request: Request, after: int = 0, wait: float = 0.0) -> MessageList:
            """The messages after seq `after`; with `wait` (seconds, at most 60), waits for one when there is none
            yet: a person's reply in a handed-off session, or an answer. Changes made by another replica end the
            wait only at its timeout."""
            identity = await self.customer(request)
            info = await self.owned(identity, session_id)
            signal = hub.change_signal(info.tenant, info.id)  # before reading: a change meanwhile is not missed
            with store_errors(session_id):
                detail = await session_detail(info, hub, everything=False)
                if wait > 0 and not any(m.seq > after for m in detail.messages):
                    try:
                        await asyncio.wait_for(signal.wait(), min(wait, 60.0))
                    except TimeoutError:
                        pass
                    info = await self.owned(identity, session_id)
                    detail = await session_detail(info, hub, everything=False)
            return MessageList(
                mode=detail.mode, running_turn=detail.running_turn, data=[m for m in detail.messages if m.seq > after]
            )

        @router.get("/{session_id}/events", response_model=None)
        async def events(session_id: str, request: Request, last_event_id: str | None = None) -> StreamingResponse:
            """A turn's events again: after `Last-Event-ID` (header, or query for clients that cannot set
            it), else the latest turn's from its start."""
            info = await self.owned(await self.customer(request), session_id)
            last = request.headers.get("last-event-id") or last_event_id
            if last:
                number, index = parse_event_id(last)
                turn = hub.get(info.tenant, info.id, number)
                if turn is None:
                    raise APIError(
                        410,
                        f"The events of turn {number} of session {session_id!r} are no longer kept here (they are kept "
                        f"for a while after the turn ends, by the replica that ran it). Its answer, if it was answered, "
                        f"is in GET /v1/sessions/{session_id}.",
                        code="events_expired",
                    )
                return sse_response(turn, index)
            turn = hub.latest(info.tenant, info.id)
            if turn is None:
                raise APIError(
                    404, f"No turn of session {session_id!r} is running or recently ended here. "
                    f"Send a message with POST /v1/sessions/{session_id}/messages.", code="no_recent_turn",
                )
            return sse_response(turn)

        @router.post("/{session_id}/cancel")
        async def cancel(session_id: str, request: Request) -> dict[str, Any]:
            info = await self.owned(await self.customer(request), session_id)
            turn = hub.running(info.tenant, info.id)
            if turn is None:
                raise APIError(409, f"No turn of session {session_id!r} is running here: nothing to cancel.", code="no_running_turn")
            await hub.cancel(turn)
            return {"session": session_id, "turn": turn.number, "status": "cancelled"}

        @router.post("/{session_id}/approvals/{approval_id}", response_model=ApprovalOut)
        async def approve(session_id: str, approval_id: str, request: Request) -> ApprovalOut:
            """The customer's answer to a tool call that waits for approval (an `approval` event)."""
            info = await self.owned(await self.customer(request), session_id)
            body = await parse_body(request, ApprovalAnswer, self.max_body_bytes)
            turn = hub.latest(info.tenant, info.id)
            approval = turn.approvals.get(approval_id) if turn is not None else None
            if approval is None:
                raise APIError(
                    404, f"Session {session_id!r} has no approval {approval_id!r} waiting: use the approval_id of an "
                    "`approval` event of its running turn.", code="approval_not_found", param="approval_id",
                )
            if approval.status != "requested":
                raise APIError(
                    409, f"Approval {approval_id!r} is already {approval.status}"
                    + (" (no answer came in time, so the call was denied)." if approval.status == "expired" else "."),
                    code="approval_closed",
                )
            assert turn is not None
            turn.answer(approval_id, body.approve)
            return ApprovalOut(approval_id=approval_id, status=approval.status)

        return router

    async def _queued(self, info: SessionInfo, text: str) -> StreamingResponse:
        with store_errors(info.id):
            seq = await self.handoff.queue(info, text)
        event = {"type": "queued", "mode": "human", "seq": seq, "message": self.handoff.note}

        async def one() -> AsyncIterator[bytes]:
            yield f"data: {json.dumps(event)}\n\n".encode()

        return StreamingResponse(one(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    # --- the OpenAI endpoint with a session -------------------------------------------------

    async def chat_completion(
        self, identity: Identity, body: oa.ChatCompletionRequest, session_id: str
    ) -> JSONResponse | StreamingResponse:
        """`POST /v1/chat/completions` with X-LLMOS-Session: only the new user message; the session has the rest."""
        if len(body.messages) != 1 or body.messages[0].role != "user":
            raise APIError(
                400,
                f"With {SESSION_HEADER} the session holds the conversation: send only the new user message "
                f"(got {len(body.messages)} messages).",
                param="messages",
            )
        text, _ = oa.to_llmos(body.messages)
        info = await self.owned(identity, session_id)
        headers = {SESSION_HEADER: session_id}
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        if info.mode == "human":
            with store_errors(session_id):
                await self.handoff.queue(info, text)
            note = self.handoff.note
            if body.stream:
                return StreamingResponse(
                    _note_chunks(body.model, note, include_usage), media_type="text/event-stream", headers=headers
                )
            return JSONResponse(oa.completion(oa.completion_id(), body.model, note, Usage()), headers=headers)
        # An OpenAI client cannot answer an approval: such calls are denied at once, as without a session.
        turn = await self.start(info, text, body.model, ask_approvals=False)
        headers["X-LLMOS-Turn"] = str(turn.number)
        if body.stream:
            return StreamingResponse(
                _turn_chunks(turn, body.model, include_usage), media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        final = await _final(turn)
        return JSONResponse(
            oa.completion(oa.completion_id(), body.model, final.result.text, final.result.usage), headers=headers
        )


def _ending(entry_data: dict[str, Any], event: Any) -> FinalEvent | None:
    """The turn's FinalEvent, or raise its end as an APIError; None for other events."""
    if isinstance(event, FinalEvent) and event.subtask is None:
        return event
    if isinstance(event, ErrorEvent) and event.subtask is None:
        raise oa.run_error(event)
    if event is None and entry_data["type"] == "error":
        status = 504 if entry_data["error"] == "run_timeout" else 500
        raise APIError(status, entry_data["message"], code=entry_data["error"], type="server_error")
    if entry_data["type"] == "cancelled":
        raise APIError(409, entry_data["message"], code="turn_cancelled")
    return None


async def _final(turn: TurnLog) -> FinalEvent:
    async for item in turn.follow():
        if item is not None and (final := _ending(item[1].data, item[1].event)) is not None:
            return final
    raise APIError(500, "The turn ended without an answer.", code="no_answer", type="server_error")


async def _turn_chunks(turn: TurnLog, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """A session turn as chat.completion.chunks (the answer's text only), then [DONE]."""
    cid = oa.completion_id()
    answer = oa.AnswerText()
    yield oa.sse(oa.chunk(cid, model, {"role": "assistant", "content": ""}))
    try:
        async for item in turn.follow():
            if item is None:
                yield b": keep-alive\n\n"
                continue
            entry = item[1]
            final = _ending(entry.data, entry.event)
            if final is not None:
                if rest := answer.rest(final.result.text):
                    yield oa.sse(oa.chunk(cid, model, {"content": rest}))
                yield oa.sse(oa.chunk(cid, model, {}, finish="stop"))
                if include_usage:
                    yield oa.sse(oa.usage_chunk(cid, model, final.result.usage))
                break
            if entry.event is not None and (piece := answer.feed(entry.event)):
                yield oa.sse(oa.chunk(cid, model, {"content": piece}))
    except APIError as exc:
        yield oa.sse(exc.body())
    yield oa.sse("[DONE]")


async def _note_chunks(model: str, note: str, include_usage: bool) -> AsyncIterator[bytes]:
    cid = oa.completion_id()
    yield oa.sse(oa.chunk(cid, model, {"role": "assistant", "content": ""}))
    yield oa.sse(oa.chunk(cid, model, {"content": note}))
    yield oa.sse(oa.chunk(cid, model, {}, finish="stop"))
    if include_usage:
        yield oa.sse(oa.usage_chunk(cid, model, Usage()))
    yield oa.sse("[DONE]")
