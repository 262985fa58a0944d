"""A scripted model for unit tests of orchestration logic. Never a default, never a demo."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Union

from llmos.llm import AssistantMessage, ChatModel, ChatRequest, ChatResponse, TextDelta, ToolCall, Usage

Step = Union[str, ToolCall, list[ToolCall], AssistantMessage, Callable[[ChatRequest], "Step"]]


class ScriptedModel(ChatModel):
    """Answers each request with the next scripted step; records every request it gets."""

    name = "scripted"

    def __init__(
        self, script: list[Step], *, delay: float = 0.0, piece_delay: float = 0.0, usage: Usage | None = None
    ) -> None:
        self.script = list(script)
        self.delay = delay
        self.piece_delay = piece_delay  # between streamed words: lets a client see an answer arrive piece by piece
        self.usage = usage or Usage(prompt_tokens=10, completion_tokens=5)
        self.requests: list[ChatRequest] = []

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        if len(self.requests) >= len(self.script):
            raise AssertionError(f"ScriptedModel got request {len(self.requests) + 1} but has {len(self.script)} steps")
        step = self.script[len(self.requests)]
        self.requests.append(request)
        while callable(step):
            step = step(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(step, ToolCall):
            message = AssistantMessage(tool_calls=[step])
        elif isinstance(step, list):
            message = AssistantMessage(tool_calls=step)
        elif isinstance(step, AssistantMessage):
            message = step
        else:
            message = AssistantMessage(content=step)
            if not request.forced_tool and request.output_schema is None:
                for piece in re.findall(r"\s*\S+", step):
                    yield TextDelta(text=piece)
                    if self.piece_delay:
                        await asyncio.sleep(self.piece_delay)
        yield ChatResponse(model=self.name, message=message, usage=self.usage)
