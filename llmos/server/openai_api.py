"""The OpenAI-compatible API: `POST /v1/chat/completions` (plain and streamed) and `GET /v1/models`.

Stateless: the client sends the whole conversation, as OpenAI clients do. The last message is
the user's turn; the ones before it become the run's history. System (and developer) messages
are passed on after the assistant's own instructions, which they cannot replace. The served
team brings its own tools, so client-side tools (`tools`, `tool` messages) are refused.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmos.agents.events import (
    ErrorEvent,
    FinalEvent,
    PlanEvent,
    SubtaskStartedEvent,
    TextDeltaEvent,
    ToolCallEvent,
)
from llmos.llm.messages import AssistantMessage, Message, SystemMessage, UserMessage
from llmos.llm.model import Usage
from llmos.server.errors import APIError

# --- the request ---------------------------------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[ContentPart] | None = None
    tool_calls: list[Any] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields llmos reads; other OpenAI fields (temperature, top_p, user...) are accepted and ignored:
    the served team sets its own sampling."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessageIn]
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[Any] | None = None
    n: int = Field(1)


ROLES = ("system", "developer", "user", "assistant")


def parse_request(body: bytes) -> ChatCompletionRequest:
    """The request body, or a 400 that says which field is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    try:
        request = ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        raise APIError(400, f"Invalid request: {param}: {first['msg']}.", param=param) from None
    if request.n != 1:
        raise APIError(400, "Only n=1 is supported: one answer per request.", param="n")
    if request.tools:
        raise APIError(
            400,
            "This endpoint serves an llmos assistant with its own tools; client-side tools are not supported. "
            "Leave `tools` out.",
            param="tools",
        )
    return request


def to_llmos(messages: list[ChatMessageIn]) -> tuple[str, list[Message]]:
    """The user's turn and the history before it, as llmos messages."""
    if not messages:
        raise APIError(400, "`messages` is empty: send at least one user message.", param="messages")
    history: list[Message] = []
    for i, m in enumerate(messages):
        param = f"messages.{i}"
        if m.role not in ROLES:
            hint = (
                " Client-side tools are not supported: the assistant runs its own."
                if m.role in ("tool", "function")
                else ""
            )
            raise APIError(
                400, f"{param}.role is {m.role!r}; use one of: {', '.join(ROLES)}.{hint}", param=f"{param}.role"
            )
        if m.tool_calls:
            raise APIError(
                400, f"{param} has tool_calls: client-side tools are not supported.", param=f"{param}.tool_calls"
            )
        text = _text(m, param)
        if m.role in ("system", "developer"):
            history.append(SystemMessage(content=text))
        elif m.role == "user":
            history.append(UserMessage(content=text))
        else:
            history.append(AssistantMessage(content=text))
    last = history.pop()
    if not isinstance(last, UserMessage):
        raise APIError(
            400,
            f"The last message is a {messages[-1].role} message; it must be the user's turn.",
            param=f"messages.{len(messages) - 1}.role",
        )
    if not last.content.strip():
        raise APIError(400, "The user's message is empty: say something.", param=f"messages.{len(messages) - 1}.content")
    return last.content, history


def _text(m: ChatMessageIn, param: str) -> str:
    if m.content is None:
        return ""
    if isinstance(m.content, str):
        return m.content
    pieces = []
    for j, part in enumerate(m.content):
        if part.type != "text" or part.text is None:
            raise APIError(
                400, f"{param}.content.{j} is a {part.type!r} part; only text parts are supported.",
                param=f"{param}.content.{j}",
            )
        pieces.append(part.text)
    return "".join(pieces)


# --- the answer ----------------------------------------------------------------------------


class AnswerText:
    """Which streamed text is the answer, and what is left to send once the run ends.

    In a team run, specialists write text for their subtask; the answer is what the planner
    writes (small talk, or the synthesis of several subtasks), or, when the plan has a single
    subtask, that specialist's text. Text a model writes before a tool call was said on the
    way; only the last step's text is compared with the final answer, whose tail (what could not
    be done, the sources) is added by code and sent at the end.
    """

    def __init__(self) -> None:
        self.source: str | None = None  # the subtask whose text is the answer; None: the top level
        self.step = ""  # answer text streamed since the answering model's last tool call

    def feed(self, event: Any) -> str:
        """The text of this event to send now ('' for none)."""
        if isinstance(event, PlanEvent):
            single = len(event.plan.subtasks) == 1 and event.route != "replan"
            self.source = event.plan.subtasks[0].id if single else None
            self.step = ""
        elif isinstance(event, (SubtaskStartedEvent, ToolCallEvent)) and event.subtask == self.source:
            self.step = ""
        elif isinstance(event, TextDeltaEvent) and event.subtask == self.source:
            self.step += event.text
            return event.text
        return ""

    def rest(self, final: str) -> str:
        """What completes the answer after what was streamed."""
        if final.startswith(self.step):
            return final[len(self.step):]
        return ("\n\n" if self.step else "") + final


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion(cid: str, model: str, text: str, usage: Usage) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": usage_dict(usage),
    }


def chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def usage_chunk(cid: str, model: str, usage: Usage) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage_dict(usage),
    }


def run_error(event: ErrorEvent) -> APIError:
    """A failed run as an OpenAI error: the model backend unreachable is a 503, anything else a 500."""
    status = 503 if event.error in ("ModelConnectionError",) else 500
    return APIError(status, f"The assistant could not answer: {event.message}", code=event.error, type="server_error")


def sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def is_final(event: Any) -> bool:
    return isinstance(event, (FinalEvent, ErrorEvent)) and event.subtask is None
