"""The agent loop: model -> tool calls -> tool results -> model, until a final answer.

Everything an agent run does is in `Agent._loop`; read it top to bottom.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, Field

from llmos.agents import prompts
from llmos.agents.events import (
    AgentEvent,
    ApprovalEvent,
    ErrorEvent,
    FinalEvent,
    RunResult,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from llmos.errors import (
    AgentError,
    BudgetExceededError,
    LLMOSError,
    PromptError,
)
from llmos.limits import MAX_ARGUMENTS_CHARS, MAX_RESULT_CHARS, arguments_problem, clip_result
from llmos.llm.messages import AssistantMessage, Message, SystemMessage, ToolCall, ToolMessage, UserMessage
from llmos.llm.model import ChatModel, ChatRequest, OutputSchema, TextDelta, ToolChoice, Usage
from llmos.llm.parsing import canonical_arguments
from llmos.tools import Tool, ToolResult, as_tool
from llmos.tools.context import ApprovalRequest, RunContext

if TYPE_CHECKING:
    from llmos.memory.conversation import Memory

OutputT = TypeVar("OutputT")


class Budget(BaseModel):
    """Limits of one run. A run that reaches one stops with BudgetExceededError.

    The last of `max_steps` is kept for the answer: it is asked without tools, so a model
    that would go on calling them answers from what it has instead of failing the run.
    """

    max_steps: int = Field(8, ge=1, description="Model calls, tool-using steps and the final answer together.")
    max_tokens: int | None = Field(None, ge=1, description="Prompt plus completion tokens over the whole run.")
    max_seconds: float | None = Field(None, gt=0, description="Wall time of the whole run.")
    # Bounds of each tool call rather than of the run: see llmos.limits.
    max_argument_chars: int = Field(
        MAX_ARGUMENTS_CHARS, ge=1, description="Longer tool arguments are refused with an error result."
    )
    max_result_chars: int = Field(MAX_RESULT_CHARS, ge=1, description="Longer tool results are cut for the model.")


class Agent(Generic[OutputT]):
    """A name, a description, instructions, tools and a model.

    `await agent.run(task)` returns a RunResult; `agent.stream(task)` yields typed events
    and ends with a FinalEvent or an ErrorEvent; `agent.run_sync(task)` is for scripts.
    Each takes `context=RunContext(user=..., tenant=..., approver=...)`: who the run is for,
    passed to the tools that ask for it, and who approves side-effecting calls.

    tool_choice: what the first step may do: "auto" (the model decides), "required" or a
    tool's name (it must call one first: for specialists that always look something up, and
    for models whose free choice is unreliable), or "none". Later steps are always "auto".
    turn_notes: callables (task, history) -> text (or an awaitable of it) sent with the requests
    of that run only, when not empty: rules that apply to some turns (guidelines that match, an
    escalation the customer's words trigger). They come as a system message right after the
    customer's message, so the system prompt stays byte-identical from turn to turn (the prefix
    cache keeps hitting) and a small model reads them last; they are not kept in the transcript.

    memory: where runs with `session=` keep their conversation (llmos.memory.Memory).
    """

    def __init__(
        self,
        name: str,
        *,
        instructions: str = "",
        description: str = "",
        tools: Sequence[Any] = (),
        model: ChatModel | str | None = None,
        output_type: type[OutputT] | None = None,
        budget: Budget | None = None,
        tool_choice: ToolChoice = "auto",
        max_tokens_per_call: int | None = None,
        memory: Memory | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.instructions = instructions or prompts.DEFAULT_INSTRUCTIONS.format(name=name)
        self.tools: dict[str, Tool] = {}
        for item in tools:
            t = as_tool(item)
            if t.name in self.tools:
                raise AgentError(f"Agent '{name}' has two tools named '{t.name}': give one of them another name.")
            self.tools[t.name] = t
        # Computed once, in a fixed order: the request prefix stays byte-identical between calls.
        self._specs = [t.spec for t in self.tools.values()]
        self._model = model
        self.output_schema = OutputSchema.of(output_type) if output_type is not None else None
        self.budget = budget or Budget()
        self.tool_choice = tool_choice
        self.max_tokens_per_call = max_tokens_per_call
        self.turn_notes: list[Callable[[str, Sequence[Message]], str | Awaitable[str]]] = []
        self.memory = memory

    @property
    def model(self) -> ChatModel:
        if not isinstance(self._model, ChatModel):
            from llmos.llm.registry import get_model

            self._model = get_model(self._model)
        return self._model

    # --- public entry points ---------------------------------------------------------

    async def warm(self, model: ChatModel | None = None) -> None:
        """Read the start of every request this agent sends (its instructions and tool schemas) into the
        model's prompt cache, before any task; `model` when the agent has none of its own (a team's)."""
        model = model if self._model is None and model is not None else self.model
        await model.prefill(ChatRequest(messages=[SystemMessage(content=self.instructions)], tools=self._specs))

    async def run(
        self,
        task: str,
        *,
        history: Sequence[Message] = (),
        context: RunContext | None = None,
        session: str | None = None,
    ) -> RunResult:
        """Run to the final answer. Raises an LLMOSError (e.g. BudgetExceededError) when the run cannot finish.

        session: a session's name: the run continues it (its history from `memory`, its answer stored there).
        """
        if session is not None:
            return await self._memory(history).run(self, task, session=session, context=context)
        async with aclosing(self._loop(task, history, context or RunContext())) as events:
            async for event in events:
                if isinstance(event, FinalEvent):
                    return event.result
        raise AssertionError("agent loop ended without a final answer")

    async def stream(
        self,
        task: str,
        *,
        history: Sequence[Message] = (),
        context: RunContext | None = None,
        session: str | None = None,
    ) -> AsyncIterator[AgentEvent]:
        """Yield events as they happen. Errors end the stream with an ErrorEvent instead of raising."""
        try:
            if session is not None:
                events = self._memory(history).stream(self, task, session=session, context=context)
            else:
                events = self._loop(task, history, context or RunContext())
            async with aclosing(events):
                async for event in events:
                    yield event
        except Exception as exc:  # noqa: BLE001 - the stream reports every failure as an event
            message = str(exc) if isinstance(exc, LLMOSError) else f"{type(exc).__name__}: {exc}"
            yield ErrorEvent(agent=self.name, error=type(exc).__name__, message=message)

    async def retry(self, session: str, *, turn: int | None = None, context: RunContext | None = None) -> RunResult:
        """Answer a turn of `session` that has no answer (its run failed, was cancelled or crashed), once.

        The turn's stored message runs again with the history before it; the answer is stored with
        that turn (Memory.retry). turn: its number; default: the session's latest turn.
        TurnAnsweredError when it is answered already.
        """
        return await self._memory(()).retry(self, session=session, turn=turn, context=context)

    def run_sync(
        self,
        task: str,
        *,
        history: Sequence[Message] = (),
        context: RunContext | None = None,
        session: str | None = None,
    ) -> RunResult:
        """`run` for scripts without an event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(task, history=history, context=context, session=session))
        raise AgentError("run_sync was called inside a running event loop: use `await agent.run(...)` there.")

    async def notes_for(self, task: str, history: Sequence[Message]) -> str:
        """The turn notes that apply to a run on `task` ('' when none does)."""
        notes = []
        for note in self.turn_notes:
            text = note(task, history)
            text = await text if inspect.isawaitable(text) else text
            if text:
                notes.append(text)
        return "\n".join(notes)

    def _memory(self, history: Sequence[Message]) -> Memory:
        from llmos.memory.conversation import session_memory

        return session_memory(self.memory, f"Agent '{self.name}'", history)

    # --- the loop ----------------------------------------------------------------------

    async def _loop(self, task: str, history: Sequence[Message], context: RunContext) -> AsyncIterator[AgentEvent]:
        if not task.strip():
            raise PromptError(f"Agent '{self.name}' got an empty task: say what it should do.")
        started = time.perf_counter()
        deadline = None if self.budget.max_seconds is None else started + self.budget.max_seconds
        notes = await self.notes_for(task, history)
        messages: list[Message] = [SystemMessage(content=self.instructions), *history, UserMessage(content=task)]
        # Where the notes go in each request: right after the customer's message (not in the transcript).
        noted = (len(messages), SystemMessage(content=notes)) if notes else None
        usage = Usage()
        calls_made = tool_calls = 0
        failures: dict[str, int] = {}
        done: dict[tuple[str, str], ToolResult] = {}  # successful calls of this run, by name and arguments
        refused: dict[tuple[str, str], ToolResult] = {}  # calls denied approval: never asked twice in a run
        seen: set[tuple[str, str]] = set()  # (tool, result) pairs the model has already been shown
        answer_now: str | None = None  # a prompt that makes the next step answer without tools
        retry_tool: str | None = None  # a tool whose arguments did not validate: the retry is forced to it
        # An agent with no tools and a typed output answers in one constrained call.
        structured_now = self.output_schema is not None and not self.tools

        while True:
            if calls_made >= self.budget.max_steps:
                raise BudgetExceededError(
                    f"Agent '{self.name}' used all {self.budget.max_steps} steps without a final answer. "
                    "Raise Budget(max_steps=...) or simplify the task."
                )
            if calls_made == self.budget.max_steps - 1 and calls_made > 0 and answer_now is None:
                answer_now = prompts.ANSWER_NOW  # the last step of the budget answers
            request = self._request(
                messages if noted is None else [*messages[: noted[0]], noted[1], *messages[noted[0]:]],
                structured=structured_now, answer_now=answer_now, first=calls_made == 0, retry_tool=retry_tool
            )
            response = None
            async with aclosing(self.model.stream(request)) as stream:
                while True:
                    try:
                        async with _wall_clock(deadline, self.name):
                            event = await anext(stream)
                    except StopAsyncIteration:
                        break
                    if isinstance(event, TextDelta):
                        yield TextDeltaEvent(agent=self.name, text=event.text)
                    else:
                        response = event
            assert response is not None
            calls_made += 1
            usage = usage + response.usage
            if self.budget.max_tokens is not None and usage.total_tokens > self.budget.max_tokens:
                raise BudgetExceededError(
                    f"Agent '{self.name}' used {usage.total_tokens} tokens, over its budget of "
                    f"{self.budget.max_tokens}. Raise Budget(max_tokens=...) or shorten the task."
                )
            message = _without_repeats(response.message)
            messages.append(message)

            if not message.tool_calls:
                if self.output_schema is not None and not structured_now:
                    # Tools are done; one more call turns the answer into the typed output.
                    messages.append(UserMessage(content=prompts.STRUCTURED_FINAL))
                    structured_now = True
                    continue
                result = RunResult(
                    agent=self.name,
                    output=response.output if structured_now else response.text,
                    text=response.text,
                    messages=messages,
                    usage=usage,
                    model_calls=calls_made,
                    tool_calls=tool_calls,
                    duration_s=time.perf_counter() - started,
                )
                yield FinalEvent(agent=self.name, result=result)
                return

            for call in message.tool_calls:
                yield ToolCallEvent(agent=self.name, call=call)
            # Side-effecting calls wait for the caller's yes, one at a time, before any call of the step runs.
            for call in message.tool_calls:
                key = (call.name, _canonical(call.arguments))
                tool = self.tools.get(call.name)
                if tool is None or not tool.requires_approval or key in done:
                    continue
                if key not in refused:
                    yield ApprovalEvent(agent=self.name, call=call, status="requested")
                    async with _wall_clock(deadline, self.name):
                        reason = await self._approval(tool, call, context)
                    if reason is not None:
                        refused[key] = ToolResult(
                            content=prompts.NOT_APPROVED.format(tool=call.name, reason=reason), is_error=True
                        )
                    yield ApprovalEvent(
                        agent=self.name, call=call, status="denied" if reason else "approved", reason=reason or ""
                    )
            async with _wall_clock(deadline, self.name):
                results = await asyncio.gather(
                    *(self._run_tool(call, done, refused, context) for call in message.tool_calls)
                )
            progress = False
            retry_tool = answer_now = decided = None
            for call, (result, seconds) in zip(message.tool_calls, results):
                tool_calls += 1
                yield ToolResultEvent(
                    agent=self.name,
                    call_id=call.id,
                    name=call.name,
                    content=result.content,
                    is_error=result.is_error,
                    duration_s=seconds,
                )
                messages.append(
                    ToolMessage(tool_call_id=call.id, name=call.name, content=result.content, is_error=result.is_error)
                )
                # A step whose every result was already seen brings nothing new: small models
                # loop like that (calling the calculator on its own result). The next step answers.
                if result.bad_arguments:
                    # Free text is not constrained; a forced call to the same tool is, on backends that can.
                    retry_tool = call.name
                progress = progress or result.is_error or (call.name, result.content) not in seen
                seen.add((call.name, result.content))
                failures[call.name] = failures.get(call.name, 0) + 1 if result.is_error else 0
                allowed = self.tools[call.name].max_retries if call.name in self.tools else 1
                if failures[call.name] > allowed:
                    # Past its retries a tool is given up on, not the run: the answer says what is missing.
                    answer_now = prompts.ANSWER_WITHOUT_TOOL.format(tool=call.name)
                if result.next_call in self.tools and not any(name == result.next_call for name, _ in done):
                    decided = result.next_call
            if answer_now is None and not progress:
                answer_now = prompts.ANSWER_NOW
            if decided is not None:
                # Code decided the next call (an escalation rule): forced, once a run, before any retry of a bad call.
                retry_tool, answer_now = decided, None

    def _request(
        self, messages: list[Message], *, structured: bool, answer_now: str | None, first: bool, retry_tool: str | None
    ) -> ChatRequest:
        if structured:
            # Tools stay in the request (not callable) so that its prefix matches the earlier steps.
            return ChatRequest(
                messages=messages,
                tools=self._specs,
                tool_choice="none",
                output_schema=self.output_schema,
                max_tokens=self.max_tokens_per_call,
            )
        if answer_now:
            # Said for this request only: the run's history stays as the model wrote it.
            messages = [*messages, UserMessage(content=answer_now)]
        return ChatRequest(
            messages=messages,
            tools=self._specs,
            tool_choice=_choice(self.tool_choice if first else "auto", bool(answer_now) or not self._specs, retry_tool),
            max_tokens=self.max_tokens_per_call,
        )

    async def _approval(self, tool: Tool, call: ToolCall, context: RunContext) -> str | None:
        """None when the caller approves the call, else why it may not run."""
        if context.approver is None:
            return "this run has no one to approve it"
        request = ApprovalRequest(
            agent=self.name,
            call=call,
            description=tool.description,
            user=context.user,
            tenant=context.tenant,
            session=context.session,
        )
        try:
            async with asyncio.timeout(context.approval_timeout_s):
                approved = await context.ask_approval(request)
        except TimeoutError:
            return f"no answer came within {context.approval_timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - a failing approver denies; it never ends the run
            return f"the approval failed ({type(exc).__name__}: {exc})"
        return None if approved else "it was denied"

    async def _run_tool(
        self,
        call: ToolCall,
        done: dict[tuple[str, str], ToolResult],
        refused: dict[tuple[str, str], ToolResult],
        context: RunContext,
    ) -> tuple[ToolResult, float]:
        """Run one call; a call this run already made successfully gets its result again, without side effects."""
        started = time.perf_counter()
        tool = self.tools.get(call.name)
        key = (call.name, _canonical(call.arguments))
        if key in done:
            result = done[key]
        elif key in refused:
            result = refused[key]
        elif problem := arguments_problem(call.name, call.arguments, self.budget.max_argument_chars):
            result = ToolResult(content=problem, is_error=True)
        elif tool is None:
            result = ToolResult(
                content=f"There is no tool named '{call.name}'. Available tools: {', '.join(self.tools) or 'none'}.",
                is_error=True,
            )
        else:
            result = await tool.run(call.arguments, context)
            result = result.model_copy(update={"content": clip_result(result.content, self.budget.max_result_chars)})
            if not result.is_error:
                done[key] = result
        return result, time.perf_counter() - started


def _without_repeats(message: AssistantMessage) -> AssistantMessage:
    """The message with each distinct call once: small models sometimes write one call over
    and over until the token limit, and every copy's result would fill the context."""
    distinct: dict[tuple[str, str], ToolCall] = {}
    for call in message.tool_calls:
        distinct.setdefault((call.name, _canonical(call.arguments)), call)
    if len(distinct) == len(message.tool_calls):
        return message
    return message.model_copy(update={"tool_calls": list(distinct.values())})


def _choice(planned: ToolChoice, answer_now: bool, retry_tool: str | None) -> ToolChoice:
    if answer_now:
        return "none"
    return retry_tool or planned


def _canonical(arguments: str) -> str:
    return canonical_arguments(arguments)  # never raises: not JSON, too deep or too long is compared as written


@asynccontextmanager
async def _wall_clock(deadline: float | None, agent: str) -> AsyncIterator[None]:
    """Bound the awaits inside by what is left of the run's wall-time budget."""
    if deadline is None:
        yield
        return
    left = deadline - time.perf_counter()
    try:
        if left <= 0:
            raise TimeoutError
        async with asyncio.timeout(left):
            yield
    except TimeoutError:
        if time.perf_counter() < deadline:
            raise  # a timeout of something inside, not of the run
        raise BudgetExceededError(
            f"Agent '{agent}' ran out of its wall-time budget. Raise Budget(max_seconds=...) or simplify the task."
        ) from None
