"""Showing an agent run in the terminal as it happens."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from llmos.agents.events import (
    AgentEvent,
    ErrorEvent,
    FinalEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)


class EventRenderer:
    """Prints tool calls, tool results and streamed text; ends with a line of run statistics."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self._in_text = False

    def __call__(self, event: AgentEvent) -> None:
        out = self.console
        if isinstance(event, TextDeltaEvent):
            out.print(escape(event.text), end="", soft_wrap=True)
            self._in_text = True
            return
        if self._in_text:
            out.print()
            self._in_text = False
        if isinstance(event, ToolCallEvent):
            out.print(f"[cyan]→ {escape(event.call.name)}[/]({escape(event.call.arguments)})")
        elif isinstance(event, ToolResultEvent):
            style = "red" if event.is_error else "green"
            out.print(f"[{style}]← {escape(event.name)}: {escape(_clip(event.content))}[/] [dim]{event.duration_s * 1000:.0f} ms[/]")
        elif isinstance(event, FinalEvent):
            r = event.result
            if not r.text and r.output is not None:
                out.print(escape(str(r.output)))
            out.print(
                f"[dim]{r.model_calls} model calls, {r.tool_calls} tool calls, "
                f"{r.usage.prompt_tokens}+{r.usage.completion_tokens} tokens, {r.duration_s:.1f} s[/]"
            )
        elif isinstance(event, ErrorEvent):
            out.print(f"[bold red]{escape(event.error)}:[/] {escape(event.message)}")


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"
