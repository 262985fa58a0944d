"""Agents: the tool loop, its events, teams of specialists with a planner, and ready-made agents."""

from llmos.agents.agent import Agent, Budget
from llmos.agents.citations import Source
from llmos.agents.events import (
    AgentEvent,
    ApprovalEvent,
    ErrorEvent,
    FinalEvent,
    PlanEvent,
    RunResult,
    SubtaskFinishedEvent,
    SubtaskStartedEvent,
    TeamEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from llmos.agents.plan import Plan, Subtask, plan_schema, validate_plan
from llmos.agents.planner import Planner
from llmos.agents.runtime import Runtime, SubtaskResult
from llmos.agents.team import Team, TeamResult

__all__ = [
    "Agent",
    "AgentEvent",
    "ApprovalEvent",
    "Budget",
    "ErrorEvent",
    "FinalEvent",
    "Plan",
    "PlanEvent",
    "Planner",
    "RunResult",
    "Runtime",
    "Source",
    "Subtask",
    "SubtaskFinishedEvent",
    "SubtaskResult",
    "SubtaskStartedEvent",
    "Team",
    "TeamEvent",
    "TeamResult",
    "TextDeltaEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "plan_schema",
    "validate_plan",
]
