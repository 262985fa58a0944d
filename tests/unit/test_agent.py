"""The agent loop with a scripted model: order of events, tool results, retries, budgets, typed output."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from llmos.agents import Agent, Budget, ErrorEvent, FinalEvent, TextDeltaEvent, ToolCallEvent, ToolResultEvent
from llmos.agents import prompts
from llmos.errors import AgentError, BudgetExceededError, OutputValidationError
from llmos.llm import AssistantMessage, ToolCall, ToolMessage, Usage
from llmos.tools import tool
from tests.scripted import ScriptedModel


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


async def collect(agent: Agent, task: str) -> list:
    return [event async for event in agent.stream(task)]


async def test_tool_call_then_final_answer_in_order():
    model = ScriptedModel([ToolCall.make("add", {"a": 2, "b": 3}), "The sum is 5."])
    agent = Agent("calc", tools=[add], model=model)
    events = await collect(agent, "2+3?")

    kinds = [type(e) for e in events]
    assert kinds[:2] == [ToolCallEvent, ToolResultEvent]
    assert all(k is TextDeltaEvent for k in kinds[2:-1]) and kinds[-1] is FinalEvent
    assert events[1].content == "5" and not events[1].is_error
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == "The sum is 5."
    result = events[-1].result
    assert result.output == "The sum is 5." and result.model_calls == 2 and result.tool_calls == 1
    assert result.usage == Usage(prompt_tokens=20, completion_tokens=10)
    # The second request carries the call and its result, linked by id.
    second = model.requests[1].messages
    assert isinstance(second[-1], ToolMessage) and second[-1].content == "5"
    assert second[-1].tool_call_id == second[-2].tool_calls[0].id


async def test_tool_call_written_as_fenced_json_is_run():
    text = 'Let me add.\n```json\n{"name": "add", "arguments": {"a": 40, "b": 2}}\n```'
    model = ScriptedModel([text, "42"])
    events = await collect(Agent("calc", tools=[add], model=model), "40+2?")
    shown = "".join(e.text for e in events if isinstance(e, TextDeltaEvent))
    assert shown == "Let me add.\n42"  # the call itself is not shown as prose
    result = events[-1].result
    assert result.output == "42" and result.tool_calls == 1
    assert model.requests[1].messages[-1].content == "42"


async def test_invalid_arguments_go_back_to_the_model_which_corrects_them():
    model = ScriptedModel(
        [ToolCall(name="add", arguments='{"a": "two", "b": 3}'), ToolCall.make("add", {"a": 2, "b": 3}), "5"]
    )
    events = await collect(Agent("calc", tools=[add], model=model), "2+3?")
    results = [e for e in events if isinstance(e, ToolResultEvent)]
    assert results[0].is_error and "a" in results[0].content
    assert not results[1].is_error and results[1].content == "5"
    assert isinstance(events[-1], FinalEvent)
    assert model.requests[1].messages[-1].is_error


async def test_malformed_json_arguments_are_a_tool_error_not_a_crash():
    model = ScriptedModel([ToolCall(name="add", arguments='{"a": 2, "b": '), ToolCall.make("add", {"a": 2, "b": 0}), "2"])
    events = await collect(Agent("calc", tools=[add], model=model), "2+?")
    assert [e for e in events if isinstance(e, ToolResultEvent)][0].is_error
    assert isinstance(events[-1], FinalEvent)


async def test_tool_exception_is_reported_to_the_model_and_run_goes_on():
    model = ScriptedModel([ToolCall.make("explode", {"reason": "x"}), "It failed."])
    events = await collect(Agent("a", tools=[explode], model=model), "go")
    result_event = next(e for e in events if isinstance(e, ToolResultEvent))
    assert result_event.is_error and "boom: x" in result_event.content
    assert events[-1].result.output == "It failed."


async def test_a_tool_failing_past_its_retries_is_given_up_and_the_run_answers():
    failing = [ToolCall.make("explode", {"reason": str(i)}) for i in range(explode.max_retries + 1)]
    model = ScriptedModel([*failing, "I could not do that: the tool keeps failing."])
    events = await collect(Agent("a", tools=[explode], model=model), "go")
    assert sum(isinstance(e, ToolResultEvent) for e in events) == explode.max_retries + 1
    last = model.requests[-1]
    assert last.tool_choice == "none" and "explode keeps failing" in last.messages[-1].content
    assert events[-1].result.output == "I could not do that: the tool keeps failing."


async def test_unknown_tool_is_reported_to_the_model():
    model = ScriptedModel([ToolCall.make("delete_everything", {}), "ok"])
    await Agent("a", tools=[add], model=model).run("go")
    reply = model.requests[1].messages[-1]
    assert reply.is_error and "no tool named 'delete_everything'" in reply.content and "add" in reply.content


async def test_one_call_written_many_times_in_one_answer_runs_once():
    runs = []

    @tool
    def lookup(order_id: str) -> str:
        """Look up an order."""
        runs.append(order_id)
        return f"{order_id}: shipped"

    repeated = [ToolCall.make("lookup", {"order_id": "O1"}) for _ in range(12)]
    model = ScriptedModel([[*repeated, ToolCall.make("lookup", {"order_id": "O2"})], "Both shipped."])
    result = await Agent("a", tools=[lookup], model=model).run("go")
    assert runs == ["O1", "O2"] and result.tool_calls == 2
    sent = model.requests[1].messages
    assert len(sent[-3].tool_calls) == 2 and [m.content for m in sent[-2:]] == ["O1: shipped", "O2: shipped"]


async def test_step_budget():
    model = ScriptedModel([ToolCall.make("add", {"a": 1, "b": i}) for i in range(10)])
    agent = Agent("a", tools=[add], model=model, budget=Budget(max_steps=3))
    with pytest.raises(BudgetExceededError, match="3 steps"):
        await agent.run("loop forever")
    assert len(model.requests) == 3


async def test_token_budget():
    model = ScriptedModel([ToolCall.make("add", {"a": 1, "b": 1})] * 3, usage=Usage(prompt_tokens=60, completion_tokens=10))
    agent = Agent("a", tools=[add], model=model, budget=Budget(max_tokens=100))
    with pytest.raises(BudgetExceededError, match="tokens"):
        await agent.run("go")
    assert len(model.requests) == 2


async def test_wall_time_budget_stops_a_slow_model():
    agent = Agent("a", model=ScriptedModel(["late"], delay=5.0), budget=Budget(max_seconds=0.2))
    started = time.perf_counter()
    with pytest.raises(BudgetExceededError, match="wall-time"):
        await agent.run("go")
    assert time.perf_counter() - started < 1.0


async def test_tool_calls_of_one_step_run_concurrently():
    @tool
    async def slow(n: int) -> int:
        """Sleep a little."""
        await asyncio.sleep(0.3)
        return n

    model = ScriptedModel([[ToolCall.make("slow", {"n": 1}), ToolCall.make("slow", {"n": 2})], "done"])
    started = time.perf_counter()
    result = await Agent("a", tools=[slow], model=model).run("go")
    assert time.perf_counter() - started < 0.55
    assert [m.content for m in result.messages if isinstance(m, ToolMessage)] == ["1", "2"]


class Weather(BaseModel):
    city: str
    celsius: float


async def test_typed_output_without_tools_is_one_structured_call():
    model = ScriptedModel(['{"city": "Oslo", "celsius": -3.5}'])
    result = await Agent("w", model=model, output_type=Weather).run("Weather in Oslo?")
    assert result.output == Weather(city="Oslo", celsius=-3.5)
    assert model.requests[0].output_schema is not None and model.requests[0].tools == []


async def test_typed_output_after_tools_takes_one_more_call():
    model = ScriptedModel([ToolCall.make("add", {"a": 1, "b": 2}), "It is 3.", '{"city": "X", "celsius": 3}'])
    result = await Agent("w", tools=[add], model=model, output_type=Weather).run("go")
    assert result.output == Weather(city="X", celsius=3.0) and result.model_calls == 3
    final = model.requests[2]
    assert final.output_schema is not None and final.tool_choice == "none" and final.tools == model.requests[0].tools


async def test_typed_output_that_does_not_validate_is_a_clear_error():
    agent = Agent("w", model=ScriptedModel(['{"city": "Oslo"}']), output_type=Weather)
    with pytest.raises(OutputValidationError, match="celsius"):
        await agent.run("go")


async def test_forced_tool_choice_with_a_text_answer_is_an_error():
    agent = Agent("a", tools=[add], tool_choice="required", model=ScriptedModel(["I will not call tools."]))
    events = await collect(agent, "go")
    assert isinstance(events[-1], ErrorEvent) and events[-1].error == "OutputValidationError"


async def test_request_prefix_is_byte_identical_across_steps():
    model = ScriptedModel([ToolCall.make("add", {"a": 1, "b": 2}), ToolCall.make("add", {"a": 3, "b": 4}), "7"])
    await Agent("a", tools=[add, explode], model=model).run("go")
    prefixes = {
        (r.messages[0].model_dump_json(), "".join(t.model_dump_json() for t in r.tools)) for r in model.requests
    }
    assert len(prefixes) == 1


async def test_history_is_kept_before_the_task():
    model = ScriptedModel(["Your name is Ada."])
    from llmos.llm import UserMessage

    history = [UserMessage(content="I am Ada."), AssistantMessage(content="Hello Ada.")]
    await Agent("a", model=model).run("What is my name?", history=history)
    roles = [m.role for m in model.requests[0].messages]
    assert roles == ["system", "user", "assistant", "user"]


async def test_cancelling_a_run_stops_the_model():
    model = ScriptedModel(["never"], delay=10.0)
    task = asyncio.create_task(Agent("a", model=model).run("go"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_run_sync_outside_and_inside_a_loop():
    agent = Agent("a", model=ScriptedModel(["hi"]))
    assert agent.run_sync("hello").output == "hi"

    async def inside():
        with pytest.raises(AgentError, match="await agent.run"):
            agent.run_sync("hello")

    asyncio.run(inside())


def test_two_tools_with_one_name_are_refused():
    with pytest.raises(AgentError, match="two tools named 'add'"):
        Agent("a", tools=[add, add], model=ScriptedModel([]))


async def test_a_repeated_call_is_not_run_twice_and_the_next_step_must_answer():
    runs = []

    @tool
    def create_ticket(subject: str) -> str:
        """Open a support ticket."""
        runs.append(subject)
        return f"ticket {len(runs)} opened"

    call = ToolCall.make("create_ticket", {"subject": "broken"})
    model = ScriptedModel([call, ToolCall.make("create_ticket", {"subject": "broken"}), "Ticket 1 is open."])
    result = await Agent("a", tools=[create_ticket], model=model).run("open a ticket")
    assert runs == ["broken"] and result.output == "Ticket 1 is open."
    assert [r.tool_choice for r in model.requests] == ["auto", "auto", "none"]


async def test_a_step_that_only_repeats_known_results_makes_the_next_step_answer():
    # What small models do: call the calculator again on its own result.
    model = ScriptedModel([ToolCall.make("add", {"a": 390, "b": 5}), ToolCall.make("add", {"a": 395, "b": 0}), "395"])
    result = await Agent("a", tools=[add], model=model).run("390+5?")
    assert result.output == "395" and result.tool_calls == 2
    assert [r.tool_choice for r in model.requests] == ["auto", "auto", "none"]
    assert model.requests[2].tools == model.requests[0].tools  # the prefix stays the same
    assert model.requests[2].messages[-1].content == prompts.ANSWER_NOW
    assert all(m.content != prompts.ANSWER_NOW for m in result.messages if m.role == "user")


async def test_an_empty_task_is_a_clear_error():
    events = await collect(Agent("a", model=ScriptedModel([])), "   ")
    assert isinstance(events[-1], ErrorEvent) and events[-1].error == "PromptError" and "empty task" in events[-1].message


async def test_agent_tool_choice_applies_to_the_first_step_only():
    model = ScriptedModel([ToolCall.make("add", {"a": 1, "b": 2}), "3"])
    result = await Agent("a", tools=[add], tool_choice="required", model=model).run("1+2?")
    assert result.output == "3"
    assert [r.tool_choice for r in model.requests] == ["required", "auto"]


async def test_a_call_with_bad_arguments_is_retried_with_the_tool_forced():
    model = ScriptedModel([ToolCall(name="add", arguments='{"a": 1, "bb": 2}'), ToolCall.make("add", {"a": 1, "b": 2}), "3"])
    result = await Agent("a", tools=[add, explode], model=model).run("1+2?")
    assert result.output == "3"
    assert [r.tool_choice for r in model.requests] == ["auto", "add", "auto"]


async def test_the_last_step_of_the_budget_answers_without_tools():
    model = ScriptedModel([ToolCall.make("add", {"a": 1, "b": 1}), ToolCall.make("add", {"a": 2, "b": 2}), "2 and 4."])
    result = await Agent("a", tools=[add], model=model, budget=Budget(max_steps=3)).run("add things")
    assert result.output == "2 and 4." and result.model_calls == 3
    assert [r.tool_choice for r in model.requests] == ["auto", "auto", "none"]
    assert model.requests[-1].messages[-1].content == prompts.ANSWER_NOW
