"""What the session store takes and gives back: pydantic models, independent of the database.

A session is one conversation of one tenant (and usually one user). It is a list of turns;
a turn is a user's message, then (once its run has ended) the assistant's messages and a
record of the run. A turn is `unanswered` from the moment its user message is committed
until the run's answer is committed with it in one transaction (`answered`), or the run
failed (`failed`). A crash leaves it `unanswered`: it can be retried, never read as complete.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from llmos.llm.messages import Message, ToolCall
from llmos.llm.model import Usage

SessionMode = Literal["assistant", "human"]
"""Who answers the session: the assistant, or a person who took it over (hand-off)."""

TurnStatus = Literal["unanswered", "answered", "failed"]

DEFAULT_TENANT = "default"


class SessionInfo(BaseModel):
    """One conversation: its id is unique within its tenant."""

    id: str
    tenant: str = DEFAULT_TENANT
    user: str | None = None
    title: str = ""
    mode: SessionMode = "assistant"
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    turns: int = Field(0, description="Turns begun so far, answered or not.")


class Entry(BaseModel):
    """A message to store, with what the store keeps beside it."""

    message: Message
    citations: list[dict[str, Any]] = Field(
        default_factory=list, description="Sources the message cites, e.g. a team answer's Source.model_dump()."
    )
    tokens: int | None = Field(None, ge=0, description="The message's length in the model's tokens, when counted.")
    author: str | None = Field(
        None, description="Who wrote it when not the model or the session's user, e.g. 'operator:anna' (hand-off)."
    )


class StoredMessage(Entry):
    """A message as read back: its place in the session and the turn it belongs to."""

    seq: int = Field(description="Commit order within the session, from 1.")
    turn: int = Field(description="Number of its turn within the session, from 1.")
    created_at: datetime


class TurnRecord(BaseModel):
    """What a run did, kept so that a turn can be inspected later. Every field is optional."""

    outcome: str = Field("", description="How it ended, e.g. the team's route ('plan', 'direct', a specialist).")
    plan: dict[str, Any] | None = Field(None, description="A team's plan, Plan.model_dump().")
    subtasks: list[dict[str, Any]] = Field(default_factory=list, description="SubtaskResult.model_dump() each.")
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    model_calls: int = 0
    latency_s: float | None = Field(None, ge=0, description="Wall time of the run.")


class Turn(BaseModel):
    """One turn as stored. `record` is set once the turn is answered."""

    id: int = Field(description="Unique in the store: what resume_turn and get_turn take.")
    session: str
    tenant: str
    number: int = Field(description="Its place in the session, from 1.")
    status: TurnStatus
    user_message: StoredMessage
    messages: list[StoredMessage] = Field(default_factory=list, description="The answer's messages, when answered.")
    record: TurnRecord | None = None
    error: str | None = Field(None, description="Why the run failed, when failed.")
    started_at: datetime
    finished_at: datetime | None = None


class Summary(BaseModel):
    """A session's running summary: turns 1..through_turn folded into one text by the model."""

    text: str
    through_turn: int = Field(ge=1)
    tokens: int = Field(ge=0, description="Its length, as the memory's token counter counts.")
    updated_at: datetime | None = None


def as_entry(item: Message | Entry) -> Entry:
    return item if isinstance(item, Entry) else Entry(message=item)
