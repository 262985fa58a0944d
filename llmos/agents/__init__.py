"""Agents: the tool loop, its events, and ready-made agents."""

from llmos.agents.agent import Agent, Budget
from llmos.agents.events import (
    AgentEvent,
    ErrorEvent,
    FinalEvent,
    RunResult,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)

__all__ = [
    "Agent",
    "AgentEvent",
    "Budget",
    "ErrorEvent",
    "FinalEvent",
    "RunResult",
    "TextDeltaEvent",
    "ToolCallEvent",
    "ToolResultEvent",
]
