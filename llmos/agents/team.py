"""A team: a planner and specialists that answer one goal together.

    from llmos.agents import Agent, Team
    from llmos.tools import tool

    @tool
    def order_status(order_id: int) -> str:
        \"\"\"The delivery status of an order.\"\"\"
        return "shipped"

    support = Agent("support", description="Order status and returns.", tools=[order_status])
    writer = Agent("writer", description="Writes short product texts.")
    team = Team([support, writer], model="qwen2.5-coder-0.5b")
    print(team.run_sync("Where is order 7? And write a tagline for our lamp.").text)

What one goal costs in model calls:

- one routing call (small, constrained to the specialists' names, "plan" or "direct"), none
  when a trained intent classifier (`router=IntentRouter(...)`) is confident;
- small talk ("direct"): one more call, the planner's reply;
- one intent (a specialist's name): that specialist's calls; its answer is the team's answer;
- several intents ("plan"): one planning call (plus a repair call per invalid plan, at most
  `max_repairs`), the specialists' calls, one call that writes the answer, and, when a subtask
  failed and `max_replans` allows, one re-planning call.

Independent subtasks run at the same time. The answer keeps the subtasks' citations,
renumbered into one list of sources that comes from the specialists' tool results, and says
what could not be done.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from pydantic import Field

from llmos.agents import prompts
from llmos.agents.agent import Agent, Budget
from llmos.agents.citations import Citations, Source
from llmos.agents.events import (
    ErrorEvent,
    FinalEvent,
    PlanEvent,
    RunResult,
    TeamEvent,
    TextDeltaEvent,
)
from llmos.agents.plan import MAX_SUBTASKS, Plan
from llmos.agents.planner import ROUTES, Planner, describe
from llmos.agents.runtime import Meter, Runtime, SubtaskResult
from llmos.errors import AgentError, BudgetExceededError, LLMOSError, PlanError
from llmos.llm.messages import AssistantMessage, Message, UserMessage
from llmos.llm.model import ChatModel
from llmos.tools.context import RunContext

if TYPE_CHECKING:
    from llmos.agents.intent_router import IntentRouter
    from llmos.memory.conversation import Memory

_END = object()  # marks the end of a run's event queue


class TeamResult(RunResult):
    """What a team run produced. `text` (also `output`) is the answer the user reads:
    the model's answer, then what could not be done, then the numbered sources."""

    route: str = Field(description="A specialist's name (short road), 'plan', or 'direct' (small talk).")
    plan: Plan | None = None
    subtasks: list[SubtaskResult] = Field(default_factory=list, description="Every subtask run, re-plans included.")
    sources: list[Source] = Field(default_factory=list)
    failures: list[SubtaskResult] = Field(
        default_factory=list,
        description="What could not be done: failed or skipped subtasks, unless a re-plan finished the work left.",
    )
    replans: int = 0

    @property
    def answer(self) -> str:
        return self.text


class Team:
    """A planner and specialists (Agents). `await team.run(goal)` returns a TeamResult;
    `team.stream(goal)` yields TeamEvents and ends with a FinalEvent or an ErrorEvent.

    model: the planner's model (name or ChatModel), also used by specialists that have none.
        Default: the first specialist's model.
    budget: for the whole goal: model calls of the planner and all specialists together
        (max_steps), tokens, wall time.
    planner_instructions: added to the planner's system prompt (e.g. the company's rules).
    planner_example: the planner's example plan (default: a travel request); a concrete one from
        the team's own domain helps small models most.
    route: make the routing call (the short road); False always plans.
    router: an IntentRouter (a trained intent classifier) asked first; when it is confident, the
        routing call is skipped. Default: none, the model routes.
    subtask_timeout, retries: per attempt of a subtask; retried are timeouts and lost connections.
    max_replans: re-plans of the work left after a subtask failed (0: skip its dependents and report).
    memory: where runs with `session=` keep their conversation (llmos.memory.Memory).
    """

    def __init__(
        self,
        specialists: Sequence[Agent],
        *,
        model: ChatModel | str | None = None,
        planner_instructions: str = "",
        planner_example: str | None = None,
        budget: Budget | None = None,
        route: bool = True,
        subtask_timeout: float | None = 300.0,
        retries: int = 1,
        max_replans: int = 1,
        max_repairs: int = 2,
        max_subtasks: int = MAX_SUBTASKS,
        name: str = "team",
        memory: Memory | None = None,
        router: IntentRouter | None = None,
    ) -> None:
        if not specialists:
            raise AgentError("A team needs at least one specialist Agent.")
        names = [a.name for a in specialists]
        for n in names:
            if names.count(n) > 1:
                raise AgentError(f"Two specialists are named '{n}': give each its own name.")
            if n in ROUTES:
                raise AgentError(f"A specialist cannot be named '{n}' (a routing word): rename it.")
        self.specialists = list(specialists)
        self._model = model
        self.planner_instructions = planner_instructions
        self.planner_example = planner_example
        self.budget = budget or Budget(max_steps=40)
        self.route = route
        self.subtask_timeout = subtask_timeout
        self.retries = retries
        self.max_replans = max_replans
        self.max_repairs = max_repairs
        self.max_subtasks = max_subtasks
        self.name = name
        self.memory = memory
        self.router = router

    @property
    def model(self) -> ChatModel:
        """The planner's model, resolved once and shared with specialists that have none."""
        if not isinstance(self._model, ChatModel):
            if self._model is None:
                first = self.specialists[0]
                self._model = first.model if first._model is not None else _default_model()
            else:
                from llmos.llm.registry import get_model

                self._model = get_model(self._model)
        return self._model

    # --- public entry points ---------------------------------------------------------

    async def run(
        self,
        goal: str,
        *,
        history: Sequence[Message] = (),
        context: RunContext | None = None,
        session: str | None = None,
    ) -> TeamResult:
        """Run to the answer. Raises an LLMOSError (BudgetExceededError, PlanError...) when the goal cannot finish.

        `context` (who the run is for, who approves side effects) reaches every specialist's tools.
        session: a session's name: the run continues it (its history from `memory`, its answer stored there).
        """
        if session is not None:
            return await self._memory(history).run(self, goal, session=session, context=context)
        async with aclosing(self._events(goal, history, context or RunContext())) as events:
            async for event in events:
                if isinstance(event, FinalEvent) and event.subtask is None:
                    assert isinstance(event.result, TeamResult)
                    return event.result
        raise AssertionError("team run ended without a final answer")

    async def stream(
        self,
        goal: str,
        *,
        history: Sequence[Message] = (),
        context: RunContext | None = None,
        session: str | None = None,
    ) -> AsyncIterator[TeamEvent]:
        """Yield every event of the run as it happens; errors end the stream with an ErrorEvent."""
        try:
            if session is not None:
                events = self._memory(history).stream(self, goal, session=session, context=context)
            else:
                events = self._events(goal, history, context or RunContext())
            async with aclosing(events):
                async for event in events:
                    yield event
        except Exception as exc:  # noqa: BLE001 - the stream reports every failure as an event
            message = str(exc) if isinstance(exc, LLMOSError) else f"{type(exc).__name__}: {exc}"
            yield ErrorEvent(agent=self.name, error=type(exc).__name__, message=message)

    async def retry(self, session: str, *, turn: int | None = None, context: RunContext | None = None) -> TeamResult:
        """Answer a turn of `session` that has no answer (its run failed, was cancelled or crashed), once.

        The turn's stored message runs again with the history before it; the answer is stored with
        that turn (Memory.retry). turn: its number; default: the session's latest turn.
        TurnAnsweredError when it is answered already.
        """
        return await self._memory(()).retry(self, session=session, turn=turn, context=context)

    def run_sync(
        self,
        goal: str,
        *,
        history: Sequence[Message] = (),
        context: RunContext | None = None,
        session: str | None = None,
    ) -> TeamResult:
        """`run` for scripts without an event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(goal, history=history, context=context, session=session))
        raise AgentError("run_sync was called inside a running event loop: use `await team.run(...)` there.")

    def _memory(self, history: Sequence[Message]) -> Memory:
        from llmos.memory.conversation import session_memory

        return session_memory(self.memory, f"Team '{self.name}'", history)

    # --- one run ---------------------------------------------------------------------

    async def _events(self, goal: str, history: Sequence[Message], context: RunContext) -> AsyncIterator[Any]:
        """Run the goal in a task; its events (from concurrent subtasks too) come through one queue."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        runner = asyncio.create_task(self._drive(goal, list(history), context, queue.put_nowait))
        runner.add_done_callback(lambda _: queue.put_nowait(_END))
        try:
            while (event := await queue.get()) is not _END:
                yield event
            yield FinalEvent(agent=self.name, result=runner.result())  # result() raises the run's error
        finally:
            if not runner.done():  # the consumer stopped or was cancelled: stop every subtask
                runner.cancel()
                await asyncio.wait([runner])
                if not runner.cancelled():
                    runner.exception()  # retrieved: asyncio would log it as never retrieved

    async def _drive(
        self, goal: str, history: list[Message], context: RunContext, emit: Callable[[Any], None]
    ) -> TeamResult:
        """The whole run under the team's wall-time budget."""
        clock = asyncio.timeout(self.budget.max_seconds)
        try:
            async with clock:
                return await self._work(goal, history, context, emit)
        except TimeoutError:
            if not clock.expired():
                raise
            raise BudgetExceededError(
                f"The team ran out of its wall-time budget of {self.budget.max_seconds:g} s. "
                "Raise Team(budget=Budget(max_seconds=...)) or simplify the goal."
            ) from None

    async def warm(self) -> None:
        """Read every agent's fixed prompt start (the planner's, each specialist's instructions and tools) into
        the model's prompt cache, so that the first goal computes only what is new. `llmos chat` and
        `llmos serve` call it while waiting for the first message; a model without a cache does nothing."""
        await asyncio.gather(self._planner(self.model).warm(), *(a.warm(self.model) for a in self.specialists))

    def _planner(self, model: ChatModel) -> Planner:
        return Planner(
            {a.name: a.description for a in self.specialists},
            model,
            instructions=self.planner_instructions,
            example=self.planner_example,
            max_subtasks=self.max_subtasks,
            max_repairs=self.max_repairs,
        )

    async def _work(
        self, goal: str, history: list[Message], context: RunContext, emit: Callable[[Any], None]
    ) -> TeamResult:
        started = time.perf_counter()
        meter = Meter(self.budget)
        model = self.model
        planner = self._planner(meter.wrap(model))

        def say(text: str) -> None:
            emit(TextDeltaEvent(agent="planner", text=text))

        def finish(route: str, text: str, **fields: Any) -> TeamResult:
            subtasks: list[SubtaskResult] = fields.get("subtasks", [])
            return TeamResult(
                agent=self.name,
                output=text,
                text=text,
                messages=[*history, UserMessage(content=goal), AssistantMessage(content=text)],
                usage=meter.usage,
                model_calls=meter.calls,
                tool_calls=sum(r.run.tool_calls for r in subtasks if r.run is not None),
                duration_s=time.perf_counter() - started,
                route=route,
                **fields,
            )

        route = await self.router.achoose(goal, {*(a.name for a in self.specialists), *ROUTES}) if self.router else None
        if route is None:
            route = await planner.route(goal, history) if self.route else "plan"
        if route == "direct":
            return finish(route, await planner.reply(goal, history, say))
        plan = Plan.single(route, goal) if route != "plan" else await planner.plan(goal, history)
        emit(PlanEvent(plan=plan, route=route))

        runtime = Runtime(
            {a.name: meter.bind(a, default=model) for a in self.specialists},
            emit=emit,
            meter=meter,
            timeout=self.subtask_timeout,
            retries=self.retries,
            goal=goal,
            context=context,
        )
        # On the short road the specialist gets the goal itself, so it also gets the conversation;
        # a planned subtask's instruction carries what it needs.
        results, replans, failures = await self._execute(
            runtime, planner, plan, goal, history, emit, history if route != "plan" else ()
        )
        text, sources = await self._answer(planner, goal, history, results, failures, say)
        return finish(route, text, plan=plan, subtasks=results, sources=sources, failures=failures, replans=replans)

    async def _execute(
        self,
        runtime: Runtime,
        planner: Planner,
        plan: Plan,
        goal: str,
        history: list[Message],
        emit: Callable[[Any], None],
        specialist_history: Sequence[Message],
    ) -> tuple[list[SubtaskResult], int, list[SubtaskResult]]:
        """Run the plan, and re-plan the work left while subtasks fail and re-plans are allowed.

        Returns every result, the number of re-plans, and the failures: every failed or skipped
        subtask, unless the last re-plan finished the work left without failing.
        """
        phase = await runtime.run(plan, history=specialist_history)
        results = list(phase)
        replans = 0
        while any(not r.ok for r in phase) and replans < self.max_replans:
            try:
                new_plan = await planner.replan(goal, results, history)
            except PlanError:
                break  # report what failed rather than fail the whole goal
            replans += 1
            emit(PlanEvent(plan=new_plan, route="replan"))
            phase = await runtime.run(new_plan, done={r.id: r for r in results if r.ok})
            results += phase
        recovered = replans > 0 and all(r.ok for r in phase)
        return results, replans, [] if recovered else [r for r in results if not r.ok]

    async def _answer(
        self,
        planner: Planner,
        goal: str,
        history: list[Message],
        results: list[SubtaskResult],
        failures: list[SubtaskResult],
        say: Callable[[str], None],
    ) -> tuple[str, list[Source]]:
        """The answer text and its sources. Only several results need a model call to become one answer."""
        citations = Citations()
        bodies = {}
        for r in results:
            if r.ok:
                bodies[r.id], numbers = citations.add(r.id, r.text, r.retrieved)
                if len(results) > 1 and numbers:
                    bodies[r.id] += "\n(sources: " + ", ".join(f"[{n}]" for n in numbers) + ")"
        if not bodies:
            answer = prompts.NOTHING_DONE  # nothing to write from: no model call
        elif len(results) == 1:
            answer = bodies[results[0].id]  # the short road: the specialist's answer is the answer
        else:
            # Failures a re-plan made good are left out: the model would only apologise for them.
            shown = results if failures else [r for r in results if r.ok]
            answer = citations.clean(await planner.synthesize(goal, describe(shown, bodies=bodies), history, say))
        return _compose(answer, failures, citations), citations.sources


def _compose(answer: str, failures: list[SubtaskResult], citations: Citations) -> str:
    """The answer, then (added by code, not left to the model) what could not be done and the sources."""
    parts = [answer.strip()]
    if failures:
        lines = [prompts.NOT_DONE_LINE.format(instruction=r.instruction, reason=r.error) for r in failures]
        parts.append("\n".join([prompts.NOT_DONE, *lines]))
    if citations.sources:
        parts.append(prompts.SOURCES + "\n" + citations.render())
    return "\n\n".join(p for p in parts if p)


def _default_model() -> ChatModel:
    from llmos.llm.registry import get_model

    return get_model(None)
