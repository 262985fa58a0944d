"""What every llmos command shares: how its errors and Ctrl-C end it. Kept light: it is imported at start-up."""

from __future__ import annotations

from rich.console import Console


def run_command(fn, console: Console, *, interrupted: str = ""):
    """Run a command's work: an llmos error becomes a red message and exit code 1, never a traceback;
    Ctrl-C exits with 130 (saying `interrupted` first, when given)."""
    import typer

    from llmos.errors import LLMOSError

    try:
        return fn()
    except LLMOSError as exc:
        console.print(f"[bold red]{type(exc).__name__}:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        if interrupted:
            console.print(f"[yellow]{interrupted}[/]")
        raise typer.Exit(130) from None
