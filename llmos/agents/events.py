"""Typed events of an agent or team run: what a renderer, a server or a trace consumes.

An agent run yields AgentEvents. A team run (llmos.agents.team) yields TeamEvents: the same
events, with `subtask` set to the id of the subtask whose specialist produced them, plus
the plan and the start and end of each subtask. Every event has `agent` and `subtask`.
Either stream ends with exactly one FinalEvent or ErrorEvent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, SerializeAsAny

from llmos.agents.plan import Plan
from llmos.llm.messages import Message, ToolCall
from llmos.llm.model import Usage

SubtaskId = Annotated[
    Union[str, None], Field(description="The subtask this event belongs to, in a team run; None otherwise.")
]


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
    subtask: SubtaskId = None


class ToolCallEvent(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    agent: str
    call: ToolCall
    subtask: SubtaskId = None


class ToolResultEvent(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    agent: str
    call_id: str
    name: str
    content: str
    is_error: bool = False
    duration_s: float = 0.0
    subtask: SubtaskId = None


class ApprovalEvent(BaseModel):
    """A call that needs approval: asked ("requested"), then answered ("approved" or "denied").

    The caller's RunContext.approver gives the answer; a stream consumer (a terminal, a web
    page) shows the request and can feed the approver its user's choice.
    """

    type: Literal["approval"] = "approval"
    agent: str
    call: ToolCall
    status: Literal["requested", "approved", "denied"]
    reason: str = Field("", description="Why it was denied: no approver, no answer in time, or the approver said no.")
    subtask: SubtaskId = None


class FinalEvent(BaseModel):
    type: Literal["final"] = "final"
    agent: str
    # A team's final result is a TeamResult (a RunResult with the plan, subtasks and sources):
    # SerializeAsAny keeps those fields when the event is serialised (SSE, traces).
    result: SerializeAsAny[RunResult]
    subtask: SubtaskId = None


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    agent: str
    error: str = Field(description="The error's class name, e.g. BudgetExceededError.")
    message: str
    subtask: SubtaskId = None


class PlanEvent(BaseModel):
    """The plan a team will run: first after routing or planning, again after a re-plan."""

    type: Literal["plan"] = "plan"
    agent: str = "planner"
    plan: Plan
    route: str = Field(description="A specialist's name (the short road), 'plan', or 'replan'.")
    subtask: SubtaskId = None


class SubtaskStartedEvent(BaseModel):
    type: Literal["subtask_started"] = "subtask_started"
    agent: str = Field(description="The specialist that runs the subtask.")
    subtask: str
    instruction: str
    attempt: int = 1


class SubtaskFinishedEvent(BaseModel):
    """A subtask ended: done (ok), failed after its retries, or skipped because an input failed."""

    type: Literal["subtask_finished"] = "subtask_finished"
    agent: str
    subtask: str
    ok: bool
    status: Literal["ok", "failed", "skipped"]
    text: str = Field("", description="The specialist's answer, when ok.")
    error: str | None = None
    duration_s: float = 0.0


AgentEvent = Annotated[
    Union[TextDeltaEvent, ToolCallEvent, ApprovalEvent, ToolResultEvent, FinalEvent, ErrorEvent],
    Field(discriminator="type"),
]

TeamEvent = Annotated[
    Union[
        PlanEvent,
        SubtaskStartedEvent,
        SubtaskFinishedEvent,
        TextDeltaEvent,
        ToolCallEvent,
        ApprovalEvent,
        ToolResultEvent,
        FinalEvent,
        ErrorEvent,
    ],
    Field(discriminator="type"),
]
