"""Running a plan: every subtask whose dependencies are done starts at once.

`Runtime.run` is the scheduler; `Runtime._run_subtask` is one subtask with its timeout
and retries. A subtask's specialist is an ordinary Agent: its events are forwarded,
tagged with the subtask id, to one `emit` callback that the team turns into one stream.
`Meter` holds the budget of the whole goal: every model call of the planner and of
every specialist goes through it.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Literal

from pydantic import BaseModel, Field

from llmos.agents import prompts
from llmos.agents.agent import Agent, Budget
from llmos.agents.citations import passages
from llmos.agents.events import (
    ErrorEvent,
    FinalEvent,
    RunResult,
    SubtaskFinishedEvent,
    SubtaskStartedEvent,
    ToolResultEvent,
)
from llmos.agents.plan import Plan, Subtask, validate_plan
from llmos.errors import BudgetExceededError, ModelConnectionError, PlanError
from llmos.llm.messages import Message
from llmos.llm.model import ChatModel, ChatRequest, ChatResponse, TextDelta, Usage
from llmos.tools.context import RunContext

Emit = Callable[[BaseModel], None]
Status = Literal["ok", "failed", "skipped"]

RETRIED_ERRORS = frozenset({ModelConnectionError.__name__})
"""Failures worth another attempt, besides a timeout. Others (a budget, a tool called wrongly
too often) would happen again: the same task at temperature 0 gets the same answer."""


class SubtaskResult(BaseModel):
    """How one subtask ended."""

    id: str
    specialist: str
    instruction: str
    status: Status
    text: str = Field("", description="The specialist's answer, when ok.")
    error: str | None = None
    attempts: int = 0
    retrieved: dict[int, str] = Field(
        default_factory=dict, description="Numbered sources its tools returned ([1] file.md ...), for citations."
    )
    run: RunResult | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Meter:
    """Model calls and tokens of one whole goal, against one Budget shared by the planner and every subtask.

    A call is counted when it starts, so subtasks running side by side cannot overshoot
    `max_steps` together. Once the budget is spent, every later call fails at once.
    """

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.calls = 0
        self.usage = Usage()
        self.error: BudgetExceededError | None = None

    def wrap(self, model: ChatModel) -> ChatModel:
        return _MeteredModel(model, self)

    def bind(self, agent: Agent, default: ChatModel | None = None) -> Agent:
        """A copy of `agent` whose model calls count here; an agent without a model gets `default`."""
        bound = copy.copy(agent)
        # Agent keeps its model (or the name to resolve) in _model; the copy gets a wrapper
        # around the resolved one, and the user's agent is left as it was.
        model = default if agent._model is None and default is not None else agent.model
        bound._model = self.wrap(model)
        return bound

    def start_call(self) -> None:
        if self.error is None and self.calls >= self.budget.max_steps:
            self.error = BudgetExceededError(
                f"The team used all {self.budget.max_steps} model calls of its budget. "
                "Raise Team(budget=Budget(max_steps=...)) or simplify the goal."
            )
        if self.error is not None:
            raise BudgetExceededError(str(self.error))
        self.calls += 1

    def add(self, usage: Usage) -> None:
        self.usage = self.usage + usage
        limit = self.budget.max_tokens
        if limit is not None and self.usage.total_tokens > limit and self.error is None:
            self.error = BudgetExceededError(
                f"The team used {self.usage.total_tokens} tokens, over its budget of {limit}. "
                "Raise Team(budget=Budget(max_tokens=...)) or simplify the goal."
            )
        if self.error is not None:
            raise BudgetExceededError(str(self.error))


class _MeteredModel(ChatModel):
    """A model whose calls count against a Meter (behaviour added by wrapping, not by flags)."""

    def __init__(self, inner: ChatModel, meter: Meter) -> None:
        self.inner = inner
        self.meter = meter
        self.name = inner.name

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        self.meter.start_call()
        async with aclosing(self.inner.stream(request)) as events:
            async for event in events:
                if isinstance(event, ChatResponse):
                    self.meter.add(event.usage)
                yield event

    def _stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        return self.inner._stream(request)  # unused: `stream` delegates whole


class Runtime:
    """Runs plans on asyncio with one set of specialists.

    `timeout` bounds one attempt of a subtask (seconds, None for no bound); a subtask that
    timed out or lost its model connection is tried `retries` more times. Every event goes
    to `emit`; `context` goes to every specialist run. When `meter` is given, a spent team budget ends the whole run (it raises
    BudgetExceededError) instead of failing one subtask.
    """

    def __init__(
        self,
        agents: Mapping[str, Agent],
        *,
        emit: Emit,
        meter: Meter | None = None,
        timeout: float | None = None,
        retries: int = 1,
        goal: str = "",
        context: RunContext | None = None,
    ) -> None:
        self.agents = dict(agents)
        self.context = context or RunContext()
        self.goal = goal
        self.emit = emit
        self.meter = meter
        self.timeout = timeout
        self.retries = retries

    async def run(
        self, plan: Plan, *, done: Mapping[str, SubtaskResult] | None = None, history: Sequence[Message] = ()
    ) -> list[SubtaskResult]:
        """Run the plan; return its subtasks' results in plan order. An invalid plan is a PlanError.

        `done` holds results of earlier subtasks that this plan's subtasks may depend on (after
        a re-plan). A subtask whose input failed is skipped. Cancelling the run cancels every
        running subtask and waits until each has stopped.
        """
        results: dict[str, SubtaskResult] = dict(done or {})
        problems = validate_plan(plan, self.agents, max_subtasks=None, done=results)
        if problems:
            raise PlanError("This plan cannot run: " + " ".join(problems))
        waiting = list(plan.subtasks)
        running: dict[asyncio.Task[SubtaskResult], Subtask] = {}
        try:
            while waiting or running:
                self._start_ready(waiting, running, results, history)
                if not running:
                    break  # cannot happen with a valid plan; never wait on nothing
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    subtask = running.pop(task)
                    results[subtask.id] = task.result()  # raises only what ends the whole run
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        return [results[s.id] for s in plan.subtasks]

    def _start_ready(
        self,
        waiting: list[Subtask],
        running: dict[asyncio.Task[SubtaskResult], Subtask],
        results: dict[str, SubtaskResult],
        history: Sequence[Message],
    ) -> None:
        """Start every waiting subtask whose inputs are all done; skip those with a failed input."""
        changed = True
        while changed:  # a skip can make further subtasks skippable
            changed = False
            for subtask in list(waiting):
                inputs = [results.get(dep) for dep in subtask.depends_on]
                failed = [r.id for r in inputs if r is not None and not r.ok]
                if failed:
                    results[subtask.id] = self._skip(subtask, f"it needs {', '.join(failed)}, which did not finish")
                elif all(r is not None for r in inputs):
                    task = asyncio.create_task(self._run_subtask(subtask, [r for r in inputs if r], history))
                    running[task] = subtask
                else:
                    continue
                waiting.remove(subtask)
                changed = True

    async def _run_subtask(
        self, subtask: Subtask, inputs: list[SubtaskResult], history: Sequence[Message]
    ) -> SubtaskResult:
        agent = self.agents[subtask.specialist]
        task = subtask_text(subtask, inputs, self.goal)
        started = time.perf_counter()
        error, attempt = "", 0
        for attempt in range(1, self.retries + 2):
            self.emit(
                SubtaskStartedEvent(
                    agent=agent.name, subtask=subtask.id, instruction=subtask.instruction, attempt=attempt
                )
            )
            retrieved: dict[int, str] = {}
            try:
                async with asyncio.timeout(self.timeout):
                    outcome = await self._attempt(agent, subtask.id, task, history, retrieved)
            except TimeoutError:
                error, retry = f"it took longer than {self.timeout:g} s", True
            else:
                if isinstance(outcome, RunResult):
                    text = outcome.text or str(outcome.output)
                    return self._end(
                        subtask, "ok", started, text=text, attempts=attempt, retrieved=retrieved, run=outcome
                    )
                if self.meter is not None and self.meter.error is not None:
                    raise BudgetExceededError(str(self.meter.error))
                error, retry = f"{outcome.error}: {outcome.message}", outcome.error in RETRIED_ERRORS
            if not retry:
                break
        return self._end(subtask, "failed", started, error=error, attempts=attempt)

    async def _attempt(
        self, agent: Agent, subtask_id: str, task: str, history: Sequence[Message], retrieved: dict[int, str]
    ) -> RunResult | ErrorEvent:
        """One run of the specialist: forward its events tagged with the subtask id; its final result or error."""
        async with aclosing(agent.stream(task, history=history, context=self.context)) as events:
            async for event in events:
                if isinstance(event, (FinalEvent, ErrorEvent)):
                    # The team's stream has one end: a subtask's end is its SubtaskFinishedEvent.
                    return event.result if isinstance(event, FinalEvent) else event
                if isinstance(event, ToolResultEvent) and not event.is_error:
                    retrieved.update(passages(event.content))
                self.emit(event.model_copy(update={"subtask": subtask_id}))
        raise AssertionError("agent stream ended without a final or error event")

    def _skip(self, subtask: Subtask, reason: str) -> SubtaskResult:
        return self._end(subtask, "skipped", time.perf_counter(), error=reason)

    def _end(self, subtask: Subtask, status: Status, started: float, **fields: Any) -> SubtaskResult:
        """Report how a subtask ended (one SubtaskFinishedEvent) and return its result."""
        result = SubtaskResult(
            id=subtask.id,
            specialist=subtask.specialist,
            instruction=subtask.instruction,
            status=status,
            duration_s=time.perf_counter() - started,
            **fields,
        )
        agent = self.agents.get(subtask.specialist)
        self.emit(
            SubtaskFinishedEvent(
                agent=agent.name if agent is not None else subtask.specialist,
                subtask=subtask.id,
                ok=result.ok,
                status=status,
                text=result.text,
                error=result.error,
                duration_s=result.duration_s,
            )
        )
        return result


def subtask_text(subtask: Subtask, inputs: Sequence[SubtaskResult], goal: str = "") -> str:
    """The task a specialist gets, in a fixed format: the user's whole message (when the plan came from one),
    the instruction, what to give back, then its inputs' results.

    The message goes first and the instruction after it, closest to the answer: a planner can
    drop a detail the specialist needs (an order number, a date), and a small model follows
    what it read last.
    """
    text = subtask.instruction
    if goal.strip() and goal.strip() != subtask.instruction.strip():
        text = prompts.SUBTASK_GOAL.format(goal=goal.strip(), instruction=subtask.instruction)
    if subtask.returns:
        text += prompts.SUBTASK_RETURNS.format(returns=subtask.returns)
    for r in inputs:
        text += prompts.SUBTASK_INPUT.format(id=r.id, specialist=r.specialist, text=r.text)
    return text
