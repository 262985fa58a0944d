"""Typed events of an agent run: what a renderer, a server or a trace consumes."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field

from llmos.llm.messages import Message, ToolCall
from llmos.llm.model import Usage


class RunResult(BaseModel):
    """What an agent run produced."""

    agent: str
    output: Any = Field(description="The final answer: text, or the object of the agent's output_type.")
    text: str = ""
    messages: list[Message] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model_calls: int = 0
    tool_calls: int = 0
    duration_s: float = 0.0


class TextDeltaEvent(BaseModel):
    type: Literal["text_delta"] = "text_delta"
    agent: str
    text: str


class ToolCallEvent(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    agent: str
    call: ToolCall


class ToolResultEvent(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    agent: str
    call_id: str
    name: str
    content: str
    is_error: bool = False
    duration_s: float = 0.0


class FinalEvent(BaseModel):
    type: Literal["final"] = "final"
    agent: str
    result: RunResult


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    agent: str
    error: str = Field(description="The error's class name, e.g. BudgetExceededError.")
    message: str


AgentEvent = Annotated[
    Union[TextDeltaEvent, ToolCallEvent, ToolResultEvent, FinalEvent, ErrorEvent],
    Field(discriminator="type"),
]
