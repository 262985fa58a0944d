"""The one model interface: a request in, text deltas and a response out.

Backends implement `_stream`; everything they share (checking the request,
timing, finding tool calls written as text, validating structured output)
lives here, so each backend only speaks its own wire format.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, model_validator

from llmos.errors import OutputValidationError, PromptError
from llmos.llm.messages import AssistantMessage, Message, ToolCall, ToolMessage
from llmos.llm.parsing import CallTextHolder, extract_json, parse_tool_calls

ToolChoice = Literal["auto", "required", "none"] | str
"""`auto`, `required`, `none`, or the name of the one tool the model must call."""


class ToolSpec(BaseModel):
    """What a model is told about a tool: its name, what it does, and a JSON schema of its arguments."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    parameters: dict[str, Any]


class OutputSchema(BaseModel):
    """A JSON schema the model's answer must match, with the Python type to validate into when there is one."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    json_schema: dict[str, Any]
    _adapter: TypeAdapter[Any] | None = PrivateAttr(default=None)

    @classmethod
    def of(cls, spec: type | dict[str, Any] | OutputSchema) -> OutputSchema:
        """Build from a pydantic model, any type pydantic can validate, or a JSON schema dict."""
        if isinstance(spec, OutputSchema):
            return spec
        if isinstance(spec, dict):
            jsonschema.Draft202012Validator.check_schema(spec)
            return cls(name=str(spec.get("title", "output")), json_schema=spec)
        adapter = TypeAdapter(spec)
        schema = cls(name=getattr(spec, "__name__", "output"), json_schema=adapter.json_schema())
        schema._adapter = adapter
        return schema

    def validate_text(self, text: str) -> Any:
        """Parse the model's text as JSON and validate it; raise OutputValidationError with the reason."""
        try:
            data = extract_json(text)
        except ValueError as exc:
            raise OutputValidationError(
                f"The model's answer is not JSON for output '{self.name}': {exc}. Answer was: {text[:300]!r}"
            ) from None
        try:
            if self._adapter is not None:
                return self._adapter.validate_python(data)
        except ValidationError as exc:
            raise OutputValidationError(
                f"The model's answer does not match output '{self.name}': {_clip(str(exc))}. Answer was: {text[:300]!r}"
            ) from None
        # The first error, not jsonschema's best of all of them: a runaway answer can hold thousands.
        error = next(jsonschema.Draft202012Validator(self.json_schema).iter_errors(data), None)
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "the answer"
            raise OutputValidationError(
                f"The model's answer does not match output '{self.name}': at {where}: {_clip(error.message)}. "
                f"Answer was: {text[:300]!r}"
            )
        return data


class ChatRequest(BaseModel):
    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    output_schema: OutputSchema | None = None
    max_tokens: int | None = None
    temperature: float = 0.0

    @model_validator(mode="after")
    def _check(self) -> ChatRequest:
        if not self.messages:
            raise PromptError("The request has no messages: pass at least one user message.")
        if self.tool_choice not in ("auto", "required", "none"):
            names = [t.name for t in self.tools]
            if self.tool_choice not in names:
                raise PromptError(
                    f"tool_choice names '{self.tool_choice}', which is not among the request's tools {names}."
                )
        if self.tool_choice == "required" and not self.tools:
            raise PromptError("tool_choice='required' needs at least one tool in the request.")
        if self.output_schema is not None and self.tools and self.tool_choice != "none":
            raise PromptError("Ask for tool calls or for an output schema in one request, not both.")
        return self

    @property
    def forced_tool(self) -> bool:
        """True when the model must answer with a tool call."""
        return self.tool_choice not in ("auto", "none")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class ChatResponse(BaseModel):
    """One model answer: a message (text and/or tool calls), usage, latency, and the validated output."""

    model: str
    message: AssistantMessage
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    finish_reason: Literal["stop", "length", "tool_calls"] = "stop"
    output: Any = None

    @property
    def text(self) -> str:
        return self.message.content or ""

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.message.tool_calls


class TextDelta(BaseModel):
    """A piece of streamed answer text."""

    text: str


class ChatModel(ABC):
    """Base of every backend. Use `chat` for a whole answer, `stream` for deltas followed by the answer."""

    name: str = "model"

    async def chat(self, request: ChatRequest) -> ChatResponse:
        response: ChatResponse | None = None
        async for event in self.stream(request):
            if isinstance(event, ChatResponse):
                response = event
        assert response is not None, f"{type(self).__name__}._stream ended without a ChatResponse"
        return response

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        """Yield TextDelta events while the model writes free text, then exactly one ChatResponse."""
        started = time.perf_counter()
        holder = CallTextHolder() if request.tools and request.tool_choice == "auto" else None
        async for event in self._stream(request):
            if isinstance(event, ChatResponse):
                response = _finish(request, event, time.perf_counter() - started)
                if holder is not None and not response.tool_calls and (rest := holder.flush()):
                    yield TextDelta(text=rest)
                yield response
                return
            if holder is None:
                yield event
            elif shown := holder.feed(event.text):
                yield TextDelta(text=shown)
        raise AssertionError(f"{type(self).__name__}._stream ended without a ChatResponse")

    @abstractmethod
    def _stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        """Backend work: yield TextDelta for free text, then one raw ChatResponse."""

    async def prefill(self, request: ChatRequest) -> None:
        """Read the request's prompt into the model's cache now, so that a later request that starts the same
        way (an agent's instructions and tools) answers sooner. A model without a cache of its own does nothing."""

    async def aclose(self) -> None:
        """Release what the backend holds (threads, connections). Safe to call twice."""


def _clip(message: str, limit: int = 1000) -> str:
    """An error message short enough for a prompt: validators quote the offending value, which can be megabytes."""
    return message if len(message) <= limit else message[:limit] + " ..."


def _finish(request: ChatRequest, raw: ChatResponse, latency_s: float) -> ChatResponse:
    message = raw.message
    output = None
    if request.output_schema is not None:
        output = request.output_schema.validate_text(message.content or "")
    elif request.tools and request.tool_choice != "none" and not message.tool_calls:
        # Open models often write their call as JSON text instead of a native call. A call copied
        # from a tool result is a quotation (a document that holds one), not the model's call.
        quoted = [m.content for m in request.messages if isinstance(m, ToolMessage)]
        calls, rest = parse_tool_calls(message.content or "", [t.name for t in request.tools], quoted=quoted)
        if calls:
            message = AssistantMessage(content=rest or None, tool_calls=calls)
    if request.forced_tool and not message.tool_calls:
        raise OutputValidationError(
            f"The model was required to call a tool ({request.tool_choice}) but wrote text instead: "
            f"{(message.content or '')[:300]!r}. Use a backend that constrains decoding, or retry."
        )
    finish_reason = "tool_calls" if message.tool_calls else raw.finish_reason
    return raw.model_copy(
        update={"message": message, "latency_s": latency_s, "output": output, "finish_reason": finish_reason}
    )
