"""Orchestration overhead per agent run: llmos against LangGraph and LangChain, with instant fake models.

One run = model -> one tool call -> tool result -> model -> final answer. The models answer
instantly, so what is measured is the framework itself. Run: `python -m bench.overhead`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from bench.common import print_table, summary, write_results
from llmos.agents import Agent
from llmos.llm import AssistantMessage, ChatModel, ChatRequest, ChatResponse, TextDelta, ToolCall, UserMessage
from llmos.tools import tool

RUNS = {"llmos": 3000, "bare_loop": 3000, "langgraph": 300, "langchain": 300}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class InstantModel(ChatModel):
    """Calls `add` when the last message is the user's, otherwise answers. Takes no time."""

    name = "instant"

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        if isinstance(request.messages[-1], UserMessage):
            message = AssistantMessage(tool_calls=[ToolCall(id="call_1", name="add", arguments='{"a": 2, "b": 3}')])
        else:
            message = AssistantMessage(content="5")
        yield ChatResponse(model=self.name, message=message)


async def time_llmos(runs: int) -> list[float]:
    agent = Agent("bench", tools=[tool(add)], model=InstantModel())
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await agent.run("What is 2+3?")
        times.append(time.perf_counter() - started)
        assert result.output == "5" and result.tool_calls == 1
    return times


async def time_bare_loop(runs: int) -> list[float]:
    """The floor: a plain Python loop doing the same steps with dicts."""

    async def model(messages: list[dict[str, Any]]) -> dict[str, Any]:
        if messages[-1]["role"] == "user":
            return {"role": "assistant", "tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}
        return {"role": "assistant", "content": "5"}

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        messages = [{"role": "user", "content": "What is 2+3?"}]
        while True:
            reply = await model(messages)
            messages.append(reply)
            if "tool_calls" not in reply:
                break
            for call in reply["tool_calls"]:
                messages.append({"role": "tool", "content": str(add(**call["arguments"]))})
        times.append(time.perf_counter() - started)
    return times


def _fake_langchain_model():
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class InstantChatModel(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "instant"

        def bind_tools(self, tools, **kwargs):
            return self

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            if isinstance(messages[-1], HumanMessage):
                reply = AIMessage(content="", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call_1"}])
            else:
                reply = AIMessage(content="5")
            return ChatResult(generations=[ChatGeneration(message=reply)])

    return InstantChatModel()


async def time_langgraph(runs: int) -> list[float]:
    import warnings

    from langchain_core.tools import tool as lc_tool

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_react_agent is deprecated in favour of langchain's create_agent
        from langgraph.prebuilt import create_react_agent

        graph = create_react_agent(_fake_langchain_model(), [lc_tool(add)])
    return await _time_graph(graph, runs)


async def time_langchain(runs: int) -> list[float]:
    from langchain.agents import create_agent
    from langchain_core.tools import tool as lc_tool

    return await _time_graph(create_agent(_fake_langchain_model(), [lc_tool(add)]), runs)


async def _time_graph(graph: Any, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        state = await graph.ainvoke({"messages": [("user", "What is 2+3?")]})
        times.append(time.perf_counter() - started)
        assert state["messages"][-1].content == "5"
    return times


async def main() -> None:
    timers = {"llmos": time_llmos, "bare_loop": time_bare_loop, "langgraph": time_langgraph, "langchain": time_langchain}
    results = {}
    for name, timer in timers.items():
        await timer(20)  # warm up imports and caches
        results[name] = summary(await timer(RUNS[name]))
    ratio = results["llmos"]["median_ms"] / results["langgraph"]["median_ms"]
    rows = [
        [name, r["runs"], r["median_ms"], r["p90_ms"], r["median_ms"] / results["langgraph"]["median_ms"]]
        for name, r in results.items()
    ]
    print_table(
        "Agent-loop overhead per run (model -> tool -> final, instant models)",
        ["framework", "runs", "median ms", "p90 ms", "x LangGraph"],
        rows,
    )
    path = write_results(
        "overhead",
        {
            "workload": "one run: model -> one tool call -> final answer, instant fake models",
            "frameworks": results,
            "ratio_vs_langgraph": ratio,
            "goal": "ratio_vs_langgraph <= 0.1",
        },
    )
    print(f"ratio_vs_langgraph = {ratio:.4f}  (goal <= 0.1)  -> {path}")


if __name__ == "__main__":
    asyncio.run(main())
