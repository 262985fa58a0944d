"""Showing an agent or team run in the terminal as it happens."""

from __future__ import annotations

import asyncio
import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmos.tools.context import ApprovalRequest

from llmos.agents.events import (
    ApprovalEvent,
    ErrorEvent,
    FinalEvent,
    PlanEvent,
    SubtaskFinishedEvent,
    SubtaskStartedEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)


class EventRenderer:
    """Prints the plan, subtasks starting and finishing (with the time since the run began, so
    parallel ones show side by side), tool calls and results, the streamed answer, and a last
    line of run statistics. Text a specialist writes inside a team run is shown when its
    subtask finishes; the answer to the user streams."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self._started = time.perf_counter()
        self._streamed = ""
        self._in_text = False

    def __call__(self, event: object) -> None:
        out = self.console
        if isinstance(event, TextDeltaEvent):
            if event.subtask is None:
                out.print(escape(event.text), end="", soft_wrap=True)
                self._streamed += event.text
                self._in_text = True
            return
        if self._in_text:
            out.print()
            self._in_text = False
        tag = f"[magenta]{event.subtask}[/] " if getattr(event, "subtask", None) else ""
        if isinstance(event, PlanEvent):
            table = Table("id", "specialist", "instruction", "after", title=f"Plan ({event.route})")
            for s in event.plan.subtasks:
                table.add_row(s.id, s.specialist, escape(s.instruction), ", ".join(s.depends_on) or "-")
            out.print(table)
        elif isinstance(event, SubtaskStartedEvent):
            out.print(f"{self._clock()} {tag}[bold]{escape(event.agent)}[/] started")
        elif isinstance(event, SubtaskFinishedEvent):
            style = {"ok": "green", "failed": "red", "skipped": "yellow"}[event.status]
            detail = _clip(event.text if event.ok else event.error or "", 200)
            out.print(
                f"{self._clock()} {tag}[{style}]{escape(event.agent)} {event.status}[/] "
                f"[dim]({event.duration_s:.1f} s)[/] {escape(detail)}"
            )
        elif isinstance(event, ToolCallEvent):
            out.print(f"{tag}[cyan]→ {escape(event.call.name)}[/]({escape(event.call.arguments)})")
        elif isinstance(event, ApprovalEvent):
            if event.status != "requested":
                style = "green" if event.status == "approved" else "red"
                reason = f": {escape(event.reason)}" if event.reason else ""
                out.print(f"{tag}[{style}]{escape(event.call.name)} {event.status}{reason}[/]")
        elif isinstance(event, ToolResultEvent):
            style = "red" if event.is_error else "green"
            out.print(
                f"{tag}[{style}]← {escape(event.name)}: {escape(_clip(event.content))}[/] "
                f"[dim]{event.duration_s * 1000:.0f} ms[/]"
            )
        elif isinstance(event, FinalEvent):
            r = event.result
            text = r.text if r.text or r.output is None else str(r.output)
            # What the model streamed is on screen already; print what code added after it (sources).
            rest = text[len(self._streamed):] if text.startswith(self._streamed) else "\n" + text
            if rest.strip():
                out.print(escape(rest.strip("\n")))
            out.print(
                f"[dim]{r.model_calls} model calls, {r.tool_calls} tool calls, "
                f"{r.usage.prompt_tokens}+{r.usage.completion_tokens} tokens, {r.duration_s:.1f} s[/]"
            )
        elif isinstance(event, ErrorEvent):
            out.print(f"{tag}[bold red]{escape(event.error)}:[/] {escape(event.message)}")

    def _clock(self) -> str:
        return f"[dim]{time.perf_counter() - self._started:6.1f}s[/]"


class TerminalApprover:
    """Asks the person at the terminal to approve each side-effecting call (y/N).

    Without a terminal on standard input (a script, CI) nobody can answer, so it denies
    at once instead of waiting.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._one_at_a_time = asyncio.Lock()  # parallel subtasks must not ask over each other

    async def __call__(self, request: ApprovalRequest) -> bool:
        if not sys.stdin.isatty():
            return False
        async with self._one_at_a_time:
            question = (
                f"[bold yellow]Approve[/] {escape(request.agent)} → [cyan]{escape(request.call.name)}[/]"
                f"({escape(request.call.arguments)})? [y/N] "
            )
            answer = await asyncio.to_thread(self.console.input, question)
        return answer.strip().lower() in ("y", "yes")


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"

