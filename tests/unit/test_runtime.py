"""The runtime with scripted specialists: parallelism, ordering, inputs, failures, retries, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from llmos.agents import Agent, Budget, Plan, Runtime, Subtask, SubtaskFinishedEvent, SubtaskStartedEvent
from llmos.agents.runtime import Meter
from llmos.errors import BudgetExceededError, ModelConnectionError, OutputValidationError, PlanError
from llmos.llm import ChatModel, ChatRequest, ChatResponse, TextDelta, ToolCall
from llmos.tools import tool
from tests.scripted import ScriptedModel


class Broken(ChatModel):
    """Raises `error` for the first `times` requests, then answers `text`."""

    name = "broken"

    def __init__(self, error: Exception, times: int = 1_000, text: str = "recovered") -> None:
        self.error, self.times, self.text = error, times, text
        self.requests: list[ChatRequest] = []

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        self.requests.append(request)
        if len(self.requests) <= self.times:
            raise self.error
        yield await ScriptedModel([self.text]).chat(request)


def agent(name: str, model: ChatModel, **kwargs) -> Agent:
    return Agent(name, description=f"The {name} specialist.", model=model, **kwargs)


def plan(*subtasks: tuple[str, str, list[str]]) -> Plan:
    return Plan(subtasks=[Subtask(id=i, specialist=s, instruction=f"Do {i}.", depends_on=d) for i, s, d in subtasks])


class Recorder(list):
    def __call__(self, event) -> None:
        self.append(event)

    def kinds(self, subtask: str) -> list[str]:
        return [e.type for e in self if getattr(e, "subtask", None) == subtask and e.type.startswith("subtask")]


async def test_independent_subtasks_run_at_the_same_time():
    agents = {n: agent(n, ScriptedModel([f"{n} done"], delay=0.3)) for n in ("a", "b")}
    started = time.perf_counter()
    results = await Runtime(agents, emit=Recorder()).run(plan(("s1", "a", []), ("s2", "b", [])))
    assert time.perf_counter() - started < 0.5
    assert [(r.id, r.status, r.text) for r in results] == [("s1", "ok", "a done"), ("s2", "ok", "b done")]


async def test_a_dependent_starts_after_its_inputs_and_receives_their_results():
    models = {"a": ScriptedModel(["Order 7 is lost."], delay=0.1), "b": ScriptedModel(["Lamp X."], delay=0.2)}
    models["c"] = ScriptedModel(["Apology with a lamp."])
    events = Recorder()
    agents = {n: agent(n, m) for n, m in models.items()}
    results = await Runtime(agents, emit=events).run(plan(("s3", "c", ["s1", "s2"]), ("s1", "a", []), ("s2", "b", [])))

    assert [r.id for r in results] == ["s3", "s1", "s2"]  # plan order, not finishing order
    order = [(e.type, e.subtask) for e in events if isinstance(e, (SubtaskStartedEvent, SubtaskFinishedEvent))]
    start_s3 = order.index(("subtask_started", "s3"))
    assert order.index(("subtask_finished", "s1")) < start_s3 and order.index(("subtask_finished", "s2")) < start_s3
    task = models["c"].requests[0].messages[-1].content
    assert task == "Do s3.\n\nResult of s1 (a):\nOrder 7 is lost.\n\nResult of s2 (b):\nLamp X."


async def test_a_failed_subtask_skips_its_dependents_and_not_the_others():
    agents = {
        "bad": agent("bad", Broken(OutputValidationError("not JSON"))),
        "good": agent("good", ScriptedModel(["fine", "fine too"])),
    }
    events = Recorder()
    results = await Runtime(agents, emit=events).run(
        plan(("s1", "bad", []), ("s2", "good", ["s1"]), ("s3", "good", ["s2"]), ("s4", "good", []))
    )
    status = {r.id: r.status for r in results}
    assert status == {"s1": "failed", "s2": "skipped", "s3": "skipped", "s4": "ok"}
    assert "OutputValidationError: not JSON" in results[0].error and results[0].attempts == 1  # not retried
    assert "s1" in results[1].error and "s2" in results[2].error
    assert events.kinds("s2") == ["subtask_finished"]  # skipped: never started
    assert len(agents["good"].model.requests) == 1


async def test_a_lost_connection_is_retried():
    model = Broken(ModelConnectionError("server went away"), times=1, text="second try")
    results = await Runtime({"a": agent("a", model)}, emit=(events := Recorder()), retries=1).run(plan(("s1", "a", [])))
    assert results[0].ok and results[0].text == "second try" and results[0].attempts == 2
    assert [e.attempt for e in events if isinstance(e, SubtaskStartedEvent)] == [1, 2]
    # With no retries left it fails, and says why.
    model = Broken(ModelConnectionError("server went away"))
    results = await Runtime({"a": agent("a", model)}, emit=Recorder(), retries=2).run(plan(("s1", "a", [])))
    assert results[0].status == "failed" and results[0].attempts == 3 and "server went away" in results[0].error


async def test_a_slow_subtask_times_out_per_attempt():
    agents = {"slow": agent("slow", ScriptedModel(["late", "late"], delay=5.0))}
    started = time.perf_counter()
    results = await Runtime(agents, emit=Recorder(), timeout=0.1, retries=1).run(plan(("s1", "slow", [])))
    assert time.perf_counter() - started < 1.0
    assert results[0].status == "failed" and results[0].attempts == 2 and "longer than 0.1 s" in results[0].error


async def test_events_of_a_subtask_are_tagged_with_its_id():
    @tool
    def lookup(order_id: int) -> str:
        """Find an order."""
        return f"order {order_id}: shipped"

    model = ScriptedModel([ToolCall.make("lookup", {"order_id": 7}), "Shipped."])
    events = Recorder()
    await Runtime({"support": agent("support", model, tools=[lookup])}, emit=events).run(plan(("s1", "support", [])))
    assert [e.type for e in events] == [
        "subtask_started",
        "tool_call",
        "tool_result",
        "text_delta",
        "subtask_finished",
    ]
    assert all(e.subtask == "s1" and e.agent == "support" for e in events)
    assert not any(e.type in ("final", "error") for e in events)  # the run's end belongs to the team


async def test_cancelling_a_run_cancels_every_running_subtask():
    cancelled: list[int] = []

    @tool
    async def wait(n: int) -> str:
        """Wait a long time."""
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        return "never"

    agents = {n: agent(n, ScriptedModel([ToolCall.make("wait", {"n": i})]), tools=[wait]) for i, n in enumerate("ab")}
    task = asyncio.create_task(Runtime(agents, emit=Recorder()).run(plan(("s1", "a", []), ("s2", "b", []))))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == [0, 1]


async def test_a_spent_team_budget_ends_the_whole_run():
    meter = Meter(Budget(max_steps=2))
    models = {n: ScriptedModel([ToolCall.make("nothing", {}), "x"], delay=0.05) for n in ("a", "b", "c")}
    agents = {n: meter.bind(agent(n, m)) for n, m in models.items()}
    with pytest.raises(BudgetExceededError, match="2 model calls"):
        await Runtime(agents, emit=Recorder(), meter=meter).run(plan(("s1", "a", []), ("s2", "b", []), ("s3", "c", [])))
    assert meter.calls == 2 and sum(len(m.requests) for m in models.values()) == 2


async def test_bind_leaves_the_users_agent_alone():
    model = ScriptedModel(["hi"])
    original = agent("a", model)
    bound = Meter(Budget()).bind(original)
    assert original.model is model and bound.model is not model and bound.tools is original.tools


async def test_an_invalid_plan_is_refused_before_anything_runs():
    model = ScriptedModel([])
    with pytest.raises(PlanError, match="cycle"):
        await Runtime({"a": agent("a", model)}, emit=Recorder()).run(plan(("s1", "a", ["s2"]), ("s2", "a", ["s1"])))
    with pytest.raises(PlanError, match="'b'"):
        await Runtime({"a": agent("a", model)}, emit=Recorder()).run(plan(("s1", "b", [])))


def test_a_planned_subtask_reads_the_users_message_before_its_own_part():
    from llmos.agents.runtime import subtask_text

    goal = "I'm C001; order O1090 came damaged. Also, which tent suits me?"
    subtask = Subtask(id="s1", specialist="support", instruction="Help with the damaged order.", returns="what was done")
    text = subtask_text(subtask, [], goal)
    assert text.index(goal) < text.index("Your part (do only this): Help with the damaged order.") < text.index("Give back")
    # A plan of one that is the goal itself gets it once, as it is.
    single = Subtask(id="s1", specialist="support", instruction=goal, returns="")
    assert subtask_text(single, [], goal) == goal
