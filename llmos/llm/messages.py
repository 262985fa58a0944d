"""Chat messages: the one vocabulary every backend speaks (OpenAI-style roles)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:16]


class ToolCall(BaseModel):
    """A model's request to run one tool. `arguments` is JSON text, exactly as the model wrote it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_call_id)
    name: str
    arguments: str = "{}"

    @classmethod
    def make(cls, name: str, arguments: dict[str, Any] | None = None, id: str | None = None) -> ToolCall:
        text = json.dumps(arguments or {}, ensure_ascii=False)
        return cls(name=name, arguments=text) if id is None else cls(id=id, name=name, arguments=text)


class SystemMessage(BaseModel):
    role: Literal["system"] = "system"
    content: str


class UserMessage(BaseModel):
    role: Literal["user"] = "user"
    content: str


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)


class ToolMessage(BaseModel):
    """The result of one tool call, sent back to the model."""

    role: Literal["tool"] = "tool"
    tool_call_id: str
    name: str
    content: str
    is_error: bool = False


Message = Annotated[
    Union[SystemMessage, UserMessage, AssistantMessage, ToolMessage],
    Field(discriminator="role"),
]
