"""Runs with a session: an agent's or a team's turn loaded from and stored in the session store.

    memory = Memory()                                   # sessions in LLMOS_HOME/memory.db, facts remembered
    agent = Agent("support", tools=[...], memory=memory)
    await agent.run("Where is my order?", session="support-42", context=RunContext(user="C001", tenant="acme"))

One turn, in order: the session is opened (created on first use, for the context's tenant and
user: never the model's word), the user's message is committed and the session locked
(begin_turn), the history is built (running summary plus the latest turns, within the
budget; llmos.memory.context), what is remembered about the user and relevant to the message
is added, the agent or team runs, and its answer with the turn's record (plan, subtasks, tool
calls, usage, latency, outcome) is committed in one transaction (finish_turn). A run that
fails marks the turn failed (fail_turn): its message stays, and can be retried. Then facts
about the user are learnt from their message (llmos.memory.facts).

A turn left without an answer (its run failed or was cancelled, or its process crashed) is
answered again by `retry`: its stored message runs with the history before it, and the answer
is stored with it, as a new turn's would be:

    await agent.retry("support-42", context=RunContext(user="C001", tenant="acme"))   # the latest turn
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llmos.errors import ConfigError, LLMOSError, SessionOwnerError, TurnAnsweredError, UnknownTurnError
from llmos.llm.messages import Message, SystemMessage, ToolCall, UserMessage
from llmos.llm.model import ChatModel
from llmos.memory.context import ContextPolicy, ContextWindow, TokenCounter, entry_tokens, estimate_tokens
from llmos.memory.facts import UserMemory, recall_block
from llmos.memory.models import DEFAULT_TENANT, Entry, SessionInfo, TurnRecord
from llmos.memory.sql import SQLSessionStore
from llmos.memory.store import ActiveTurn, SessionStore
from llmos.tools.context import RunContext

log = logging.getLogger(__name__)


class Runnable(Protocol):
    """An Agent or a Team: what a session's turn runs."""

    name: str

    @property
    def model(self) -> ChatModel: ...

    async def run(self, task: str, *, history: Sequence[Message] = (), context: RunContext | None = None) -> Any: ...

    def stream(self, task: str, *, history: Sequence[Message] = (), context: RunContext | None = None) -> AsyncIterator[Any]: ...


@dataclass
class _Prepared:
    turn: ActiveTurn
    history: list[Message]
    context: RunContext
    user: str | None
    started: float


class Memory:
    """The session store, the context budget, and what is remembered about each user.

    store: default SQLSessionStore() (LLMOS_MEMORY_URL, else SQLite under LLMOS_HOME).
    model: writes summaries and extracts facts; default: the model of the agent or team that runs.
    remember: learn facts about the user after each turn and recall them into later ones
        (needs a SQLSessionStore; `facts` gives a configured UserMemory instead).
    policy: the history's token budget (ContextPolicy); count_tokens: how tokens are counted.
    """

    def __init__(
        self,
        store: SessionStore | None = None,
        *,
        model: ChatModel | None = None,
        remember: bool = True,
        facts: UserMemory | None = None,
        policy: ContextPolicy | None = None,
        count_tokens: TokenCounter = estimate_tokens,
    ) -> None:
        self.store = store or SQLSessionStore()
        if facts is None and remember:
            if not isinstance(self.store, SQLSessionStore):
                raise ConfigError("Memory(remember=True) keeps facts in a SQLSessionStore: pass facts=UserMemory(...) or remember=False.")
            facts = UserMemory(self.store)
        self.facts = facts
        self.model = model
        self.window = ContextWindow(policy, count_tokens)
        self.count = count_tokens

    async def run(
        self, runnable: Runnable, text: str, *, session: str, context: RunContext | None = None
    ) -> Any:
        """One turn of the session: runnable.run with the session's history; the answer is stored."""
        prepared = await self._prepare(runnable, text, session, context or RunContext())
        return await self._run(runnable, text, prepared)

    async def stream(
        self, runnable: Runnable, text: str, *, session: str, context: RunContext | None = None
    ) -> AsyncIterator[Any]:
        """runnable.stream's events; the answer is stored before its FinalEvent is passed on."""
        started = await self.begin(runnable, text, session=session, context=context)
        async for event in started.events():
            yield event

    async def begin(
        self, runnable: Runnable, text: str, *, session: str, context: RunContext | None = None
    ) -> SessionTurn:
        """The turn with its user message committed and its session locked; `events()` runs it.

        For a caller that acknowledges the message before the run starts (a server answering
        409 for a busy session, or handing the run to a task that outlives the request).
        """
        return SessionTurn(self, runnable, text, await self._prepare(runnable, text, session, context or RunContext()))

    async def retry(
        self, runnable: Runnable, *, session: str, turn: int | None = None, context: RunContext | None = None
    ) -> Any:
        """Answer again a turn that has none: its run failed, was cancelled, or its process crashed.

        The turn's stored user message is run with the history of the turns before it, and the
        answer is stored with that turn (once), as `run` stores a new one; the session's lock is
        taken as for a new message (SessionBusyError while another turn runs).

            await memory.retry(agent, session="support-42", context=RunContext(user="C001", tenant="acme"))

        turn: the turn's number in the session (`Turn.number`); default: the session's latest turn.
        Raises UnknownSessionError (no such session for the context's tenant), UnknownTurnError,
        SessionOwnerError (another user's session), TurnAnsweredError (the turn has its answer).
        """
        begun = await self.begin_retry(runnable, session=session, turn=turn, context=context)
        return await self._run(runnable, begun.text, begun.prepared)

    async def begin_retry(
        self, runnable: Runnable, *, session: str, turn: int | None = None, context: RunContext | None = None
    ) -> SessionTurn:
        """`retry`'s turn re-opened (its session locked), not yet run: `events()` runs it, as after `begin`."""
        context = context or RunContext()
        tenant = _tenant(session, context)
        _check_owner(await self.store.get_session(session, tenant=tenant), context)
        stored = await self.store.turns(session, tenant=tenant)
        if turn is None:
            if not stored:
                raise UnknownTurnError(f"Session '{session}' of tenant '{tenant}' has no turn yet: nothing to retry.")
            chosen = stored[-1]
        else:
            found = [t for t in stored if t.number == turn]
            if not found:
                raise UnknownTurnError(
                    f"Session '{session}' of tenant '{tenant}' has no turn {turn}: it has turns 1 to {len(stored)}."
                    if stored else f"Session '{session}' of tenant '{tenant}' has no turn yet: nothing to retry."
                )
            chosen = found[0]
        if chosen.status == "answered":  # checked again under the lock, by resume_turn
            raise TurnAnsweredError(
                f"Turn {chosen.number} of session '{session}' is already answered: only an unanswered or failed "
                "turn is retried; send a new message instead."
            )
        active = await self.store.resume_turn(chosen.id)
        text = active.user_message.message.content
        assert isinstance(text, str)
        return SessionTurn(self, runnable, text, await self._ready(runnable, active, text, context))

    async def close(self) -> None:
        await self.store.close()

    # --- one turn --------------------------------------------------------------------------

    async def _run(self, runnable: Runnable, text: str, prepared: _Prepared) -> Any:
        try:
            result = await runnable.run(text, history=prepared.history, context=prepared.context)
            await self._finish(runnable, prepared, text, result)
        except BaseException as exc:  # a run that raises (or is cancelled) fails the turn
            if not prepared.turn.closed:
                await prepared.turn.fail(f"{type(exc).__name__}: {exc}")
            raise
        if not prepared.turn.closed:
            await prepared.turn.fail("The run ended without finishing the turn.")
        return result

    async def _prepare(self, runnable: Runnable, text: str, session: str, context: RunContext) -> _Prepared:
        tenant = _tenant(session, context)
        _check_owner(await self.store.open_session(session, tenant=tenant, user=context.user), context)
        turn = await self.store.begin_turn(session, text, tenant=tenant)
        return await self._ready(runnable, turn, text, context)

    async def _ready(self, runnable: Runnable, turn: ActiveTurn, text: str, context: RunContext) -> _Prepared:
        """The history of a begun (or re-opened) turn; the turn fails if it cannot be built."""
        try:
            started = time.perf_counter()
            model = self.model or runnable.model
            history = await self.window.history(self.store, turn, model)
            if self.facts is not None and context.user is not None:
                recalled = await self.facts.recall(context.user, text, tenant=turn.tenant)
                if recalled:
                    # Last, just before the message: the history before it stays byte-stable between turns.
                    history.append(SystemMessage(content=recall_block(recalled)))
        except BaseException as exc:
            await turn.fail(f"{type(exc).__name__}: {exc}")
            raise
        return _Prepared(turn, history, context.model_copy(update={"session": turn.session}), context.user, started)

    async def _finish(self, runnable: Runnable, prepared: _Prepared, text: str, result: Any) -> None:
        answer = _answer_messages(result.messages, len(prepared.history), text)
        citations = [s.model_dump(mode="json") for s in getattr(result, "sources", [])]
        entries = [
            Entry(
                message=m,
                tokens=entry_tokens(m, self.count),
                citations=citations if citations and i == len(answer) - 1 else [],
            )
            for i, m in enumerate(answer)
        ]
        await prepared.turn.finish(entries, turn_record(result, time.perf_counter() - prepared.started))
        if self.facts is not None and prepared.user is not None:
            try:
                await self.facts.learn(
                    prepared.user, text, self.model or runnable.model,
                    tenant=prepared.turn.tenant, session=prepared.turn.session,
                )
            except LLMOSError as exc:  # the answer is stored; a fact not learnt must not fail the turn
                log.warning("No facts learnt from turn %s of session %r: %s", prepared.turn.number, prepared.turn.session, exc)


class SessionTurn:
    """A begun turn of a session (its message committed, the session locked), run once by `events()`.

    A run that raises or is cancelled fails the turn (its message stays and can be retried);
    a turn never run is failed by `abandon`.
    """

    def __init__(self, memory: Memory, runnable: Runnable, text: str, prepared: _Prepared) -> None:
        self.memory, self.runnable, self.text, self.prepared = memory, runnable, text, prepared

    @property
    def turn(self) -> ActiveTurn:
        return self.prepared.turn

    @property
    def context(self) -> RunContext:
        return self.prepared.context

    async def events(self) -> AsyncIterator[Any]:
        """The run's events; the answer is stored before its FinalEvent is passed on."""
        prepared, turn = self.prepared, self.prepared.turn
        try:
            async for event in self.runnable.stream(self.text, history=prepared.history, context=prepared.context):
                if getattr(event, "subtask", None) is None and event.type == "final":
                    await self.memory._finish(self.runnable, prepared, self.text, event.result)
                elif getattr(event, "subtask", None) is None and event.type == "error":
                    await turn.fail(f"{event.error}: {event.message}")
                yield event
        except BaseException as exc:
            if not turn.closed:
                await turn.fail(f"{type(exc).__name__}: {exc}")
            raise
        if not turn.closed:
            await turn.fail("The run ended without finishing the turn.")

    async def abandon(self, reason: str) -> None:
        """Fail a turn that will not run (its message stays, unanswered runs can be retried)."""
        if not self.turn.closed:
            await self.turn.fail(reason)


def _tenant(session: str, context: RunContext) -> str:
    if context.session not in (None, session):
        raise ConfigError(f"The run names session '{session}' but its RunContext says '{context.session}': give one.")
    return context.tenant or DEFAULT_TENANT


def _check_owner(info: SessionInfo, context: RunContext) -> None:
    """A run continues only its own user's session (the user comes from the context, never the model)."""
    if info.user != context.user:
        raise SessionOwnerError(
            f"Session '{info.id}' of tenant '{info.tenant}' belongs to "
            f"{'user ' + repr(info.user) if info.user else 'no user'}, not to "
            f"{'user ' + repr(context.user) if context.user else 'an anonymous run'}: "
            "continue it with its own user in the RunContext, or start another session."
        )


def _answer_messages(messages: list[Message], history_length: int, text: str) -> list[Message]:
    """What the run added after the user's message (an agent's list starts with its system prompt)."""
    for i in range(history_length, len(messages)):
        m = messages[i]
        if isinstance(m, UserMessage) and m.content == text:
            return list(messages[i + 1 :])
    raise AssertionError("the run's messages do not contain the user's message")


def turn_record(result: Any, latency_s: float) -> TurnRecord:
    """The record of an agent's RunResult or a team's TeamResult."""
    plan = getattr(result, "plan", None)
    subtasks = getattr(result, "subtasks", [])
    runs = [s.run for s in subtasks if s.run is not None] or [result]
    calls: list[ToolCall] = [c for r in runs for m in r.messages if m.role == "assistant" for c in m.tool_calls]
    return TurnRecord(
        outcome=getattr(result, "route", "answer"),
        plan=plan.model_dump(mode="json") if plan is not None else None,
        subtasks=[s.model_dump(mode="json", exclude={"run"}) for s in subtasks],
        tool_calls=calls,
        usage=result.usage,
        model_calls=result.model_calls,
        latency_s=latency_s,
    )


def session_memory(memory: Memory | None, owner: str, history: Sequence[Message]) -> Memory:
    """The memory of an agent or team asked to run with a session (whose history comes from the store)."""
    if history:
        raise ConfigError(f"{owner} got both history= and session=: a session's history comes from its store; give one.")
    if memory is None:
        raise ConfigError(
            f"{owner} was asked to run with a session but has no memory: create it with memory=Memory() "
            "(llmos.memory), or run without session=."
        )
    return memory
