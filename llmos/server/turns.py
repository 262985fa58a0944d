"""Turns that outlive their request: a session's run as a task of the server, its events kept.

A message to a session begins a turn (its text committed, the session locked: Memory.begin),
then the run goes on in a task of the server, not of the request, so that a dropped
connection does not cancel it; a retry re-opens a turn left without an answer
(Memory.begin_retry) and runs it alike. Its events are numbered and kept in a TurnLog: any
number of clients follow it from any point (SSE `id: TURN:INDEX`, `Last-Event-ID`), and the log is kept
for `replay_seconds` after the turn ends. Logs live in the process that runs the turn: behind a
load balancer, a client reconnects to the same replica (sticky sessions).

Approvals: the run's RunContext.approver puts an `approval` event with an id in the log and
waits for the answer (TurnLog.answer, from `POST /v1/sessions/{id}/approvals/{approval_id}`);
the agent's approval_timeout_s bounds the wait, and no answer in time means denied.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from llmos.agents.events import ApprovalEvent, ErrorEvent, FinalEvent, TextDeltaEvent, ToolCallEvent, ToolResultEvent
from llmos.llm.messages import ToolCall
from llmos.memory.conversation import Memory, SessionTurn
from llmos.server.observability import Metrics
from llmos.tools.context import ApprovalRequest, RunContext

log = logging.getLogger("llmos.server")

HEARTBEAT_S = 15.0  # an SSE comment this often keeps proxies from closing a quiet stream (e.g. awaiting approval)
ENDINGS = ("final", "error", "cancelled")

WireEvent = dict[str, Any]
"""An event as a client reads it: JSON with its `type`."""


@dataclass
class Logged:
    """One event of a turn: what clients read, and the llmos event it came from (None for the server's own)."""

    data: WireEvent
    event: Any = None


@dataclass
class Approval:
    id: str
    call: ToolCall
    answer: asyncio.Future[bool]
    status: str = "requested"  # then approved, denied, or expired


@dataclass
class TurnLog:
    """The events of one turn, in order, while it runs and for a while after."""

    tenant: str
    session: str
    user: str | None
    number: int = 0
    entries: list[Logged] = field(default_factory=list)
    done: bool = False
    task: asyncio.Task[None] | None = None
    approvals: dict[str, Approval] = field(default_factory=dict)
    approval_of_call: dict[str, str] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, data: WireEvent, event: Any = None) -> None:
        self.entries.append(Logged(data, event))
        self._wake.set()
        self._wake = asyncio.Event()

    def close(self) -> None:
        self.done = True
        self._wake.set()

    async def follow(self, after: int = -1) -> AsyncIterator[tuple[int, Logged] | None]:
        """(index, entry) for every event after `after`, as they come, until the turn ends;
        None when nothing came for HEARTBEAT_S (the caller sends a keep-alive)."""
        index = after + 1
        while True:
            while index < len(self.entries):
                yield index, self.entries[index]
                index += 1
            if self.done:
                return
            wake = self._wake
            try:
                await asyncio.wait_for(wake.wait(), HEARTBEAT_S)
            except TimeoutError:
                yield None

    # --- approvals ---------------------------------------------------------------------

    async def approver(self, request: ApprovalRequest, timeout_s: float) -> bool:
        """RunContext.approver: an `approval` event for the client, then its answer."""
        approval = Approval("apr_" + uuid.uuid4().hex[:16], request.call, asyncio.get_running_loop().create_future())
        self.approvals[approval.id] = approval
        self.approval_of_call[request.call.id] = approval.id
        self.add({
            "type": "approval",
            "status": "requested",
            "approval_id": approval.id,
            "agent": request.agent,
            "call": request.call.model_dump(mode="json"),
            "description": request.description,
            "timeout_s": timeout_s,
        })
        try:
            return await approval.answer
        finally:
            if approval.status == "requested":  # the agent stopped waiting: its timeout, or the run ended
                approval.status = "expired"

    def answer(self, approval_id: str, approve: bool) -> Approval | None:
        """Answer a pending approval; None when this turn never asked it. Its status says whether it still waited."""
        approval = self.approvals.get(approval_id)
        if approval is not None and approval.status == "requested" and not approval.answer.done():
            approval.status = "approved" if approve else "denied"
            approval.answer.set_result(approve)
        return approval


def wire(event: Any, turn: TurnLog) -> WireEvent | None:
    """An llmos event as clients read it; None for those the server replaces or leaves out."""
    if isinstance(event, FinalEvent):
        if event.subtask is not None:
            return None  # a specialist's result: its subtask_finished event says it
        result = event.result
        return {
            "type": "final",
            "agent": event.agent,
            "text": result.text,
            "citations": [s.model_dump(mode="json") for s in getattr(result, "sources", [])],
            "usage": result.usage.model_dump(mode="json"),
        }
    if isinstance(event, ApprovalEvent):
        if event.status == "requested":
            return None  # the approver's own event carries the id to answer
        return {**event.model_dump(mode="json"), "approval_id": turn.approval_of_call.get(event.call.id)}
    return event.model_dump(mode="json")


Observer = Callable[[TurnLog, Any, dict[str, ToolCall]], Awaitable[WireEvent | None]]
"""Called with each llmos event of a turn (and the turn's tool calls by id); may answer a server
event to log after it (the hand-off watches for escalations this way)."""


class TurnHub:
    """The turns this process runs or keeps, by tenant, session and turn number."""

    def __init__(
        self,
        memory: Callable[[], Memory],
        metrics: Metrics,
        *,
        run_seconds: float,
        approval_seconds: float,
        replay_seconds: float,
        grace_seconds: float,
    ) -> None:
        self._memory_factory = memory
        self._memory: Memory | None = None
        self.metrics = metrics
        self.run_seconds = run_seconds
        self.approval_seconds = approval_seconds
        self.replay_seconds = replay_seconds
        self.grace_seconds = grace_seconds
        self.observers: list[Observer] = []
        self._logs: dict[tuple[str, str], dict[int, TurnLog]] = {}
        self._changes: dict[tuple[str, str], asyncio.Event] = {}

    @property
    def memory(self) -> Memory:
        """The session memory, opened on first use (a server that serves only stateless chats never opens it)."""
        if self._memory is None:
            self._memory = self._memory_factory()
        return self._memory

    # --- finding turns -----------------------------------------------------------------

    def get(self, tenant: str, session: str, number: int) -> TurnLog | None:
        return self._logs.get((tenant, session), {}).get(number)

    def latest(self, tenant: str, session: str) -> TurnLog | None:
        """The turn that started last (a retried earlier turn, too)."""
        logs = self._logs.get((tenant, session), {})
        return logs[next(reversed(logs))] if logs else None

    def running(self, tenant: str, session: str) -> TurnLog | None:
        latest = self.latest(tenant, session)
        return latest if latest is not None and not latest.done else None

    def forget(self, tenant: str, session: str) -> None:
        """Drop a deleted session's logs."""
        self._logs.pop((tenant, session), None)
        self.changed(tenant, session)

    # --- changes to a session, for clients that wait for them -----------------------------

    def change_signal(self, tenant: str, session: str) -> asyncio.Event:
        """Set at the next change of the session made by this process (a turn ends, a person replies,
        the mode changes). Take it before reading the session, then wait on it."""
        return self._changes.setdefault((tenant, session), asyncio.Event())

    def changed(self, tenant: str, session: str) -> None:
        if (signal := self._changes.pop((tenant, session), None)) is not None:
            signal.set()

    # --- running a turn ---------------------------------------------------------------

    async def start(
        self, servable: Any, text: str, *, tenant: str, session: str, user: str | None, ask_approvals: bool = True
    ) -> TurnLog:
        """Commit the message and lock the session (SessionBusyError when busy), then run the turn in a task.

        ask_approvals: False for a client that cannot answer approval events (OpenAI clients): calls
        that need approval are then denied at once instead of waiting out their timeout.
        """
        turn, context = self._new_log(tenant, session, user, ask_approvals)
        return self._launch(turn, await self.memory.begin(servable, text, session=session, context=context))

    async def retry(self, servable: Any, number: int, *, tenant: str, session: str, user: str | None) -> TurnLog:
        """Re-open turn `number` (unanswered or failed; the session locked as for a new message) and run it
        again in a task: its events are those of a new turn's (Memory.begin_retry)."""
        turn, context = self._new_log(tenant, session, user, True)
        return self._launch(turn, await self.memory.begin_retry(servable, session=session, turn=number, context=context))

    def _new_log(self, tenant: str, session: str, user: str | None, ask_approvals: bool) -> tuple[TurnLog, RunContext]:
        turn = TurnLog(tenant=tenant, session=session, user=user)
        timeout = self.approval_seconds

        async def approver(request: ApprovalRequest) -> bool:
            return await turn.approver(request, timeout)

        context = RunContext(
            user=user, tenant=tenant, session=session,
            approver=approver if ask_approvals else None, approval_timeout_s=timeout,
        )
        return turn, context

    def _launch(self, turn: TurnLog, begun: SessionTurn) -> TurnLog:
        turn.number = begun.turn.number
        message = begun.turn.user_message
        turn.add({
            "type": "turn", "session": turn.session, "turn": turn.number,
            "message": {"seq": message.seq, "content": begun.text},
        })
        logs = self._logs.setdefault((turn.tenant, turn.session), {})
        logs.pop(turn.number, None)  # a retried turn's earlier log: the dict's order stays the order turns started
        logs[turn.number] = turn
        turn.task = asyncio.get_running_loop().create_task(
            self._drive(turn, begun), name=f"turn {turn.session}#{turn.number}"
        )
        return turn

    async def _drive(self, turn: TurnLog, begun: SessionTurn) -> None:
        outcome = "cancelled"
        started = time.perf_counter()
        first_text = False
        calls: dict[str, ToolCall] = {}
        try:
            async with asyncio.timeout(self.run_seconds):
                async for event in begun.events():
                    if isinstance(event, ToolCallEvent):
                        calls[event.call.id] = event.call
                    elif isinstance(event, ToolResultEvent) and event.is_error:
                        self.metrics.tool_errors.labels(event.name).inc()
                    elif isinstance(event, TextDeltaEvent) and not first_text:
                        first_text = True
                        self.metrics.first_token.observe(time.perf_counter() - started)
                    if isinstance(event, FinalEvent) and event.subtask is None:
                        outcome = "ok"
                        self.metrics.tokens.labels("prompt").inc(event.result.usage.prompt_tokens)
                        self.metrics.tokens.labels("completion").inc(event.result.usage.completion_tokens)
                    elif isinstance(event, ErrorEvent) and event.subtask is None:
                        outcome = "error"
                    if (data := wire(event, turn)) is not None:
                        turn.add(data, event)
                    for observe in self.observers:
                        if (extra := await observe(turn, event, calls)) is not None:
                            turn.add(extra)
        except TimeoutError:
            outcome = "error"
            message = f"The run took longer than {self.run_seconds:g} s (LLMOS_SERVER_RUN_SECONDS)."
            turn.add({"type": "error", "agent": "server", "error": "run_timeout", "message": message})
        except asyncio.CancelledError:
            turn.add({
                "type": "cancelled",
                "message": "The turn was stopped before its answer; the message is kept, unanswered, and can be sent again.",
            })
        except Exception as exc:  # noqa: BLE001 - a failed turn is an event for its clients, never a lost task
            outcome = "error"
            log.exception("turn %s of session %r failed", turn.number, turn.session)
            turn.add({"type": "error", "agent": "server", "error": type(exc).__name__, "message": str(exc)})
        finally:
            self.metrics.runs.labels(outcome).inc()
            turn.close()
            self._expire_later(turn)
            self.changed(turn.tenant, turn.session)

    def _expire_later(self, turn: TurnLog) -> None:
        def expire() -> None:
            logs = self._logs.get((turn.tenant, turn.session), {})
            if logs.get(turn.number) is turn:
                del logs[turn.number]
                if not logs:
                    self._logs.pop((turn.tenant, turn.session), None)

        asyncio.get_running_loop().call_later(self.replay_seconds, expire)

    async def cancel(self, turn: TurnLog) -> None:
        """Stop a running turn; it is marked failed, its message kept."""
        if turn.task is not None and not turn.task.done():
            turn.task.cancel()
            await asyncio.wait({turn.task})

    async def close(self) -> None:
        """At shutdown: turns in flight may finish within the grace period; the rest are cancelled
        (recorded as failed, their messages kept)."""
        tasks = {t.task for logs in self._logs.values() for t in logs.values() if t.task and not t.task.done()}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self.grace_seconds)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._memory is not None:
            await self._memory.close()
