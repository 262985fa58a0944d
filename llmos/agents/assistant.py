"""The default agent of `llmos ask`: a helpful assistant with the built-in tools."""

from __future__ import annotations

from llmos.agents.agent import Agent
from llmos.agents.prompts import ASSISTANT_INSTRUCTIONS
from llmos.llm.model import ChatModel
from llmos.tools.builtin import BUILTIN_TOOLS


def assistant(model: ChatModel | str | None = None) -> Agent[str]:
    return Agent(
        "assistant",
        description="Answers questions, using a calculator and a clock.",
        instructions=ASSISTANT_INSTRUCTIONS,
        tools=BUILTIN_TOOLS,
        model=model,
    )
