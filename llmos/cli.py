"""The `llmos` command."""

from __future__ import annotations

import asyncio
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from llmos.errors import LLMOSError

app = typer.Typer(help="llmos: multi-agent, tool-using assistants.", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="List known models, or prepare one.", invoke_without_command=True)
app.add_typer(models_app, name="models")
console = Console(highlight=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[Optional[str], typer.Option(help="Model name or folder (default: LLMOS_MODEL).")] = None,
    max_steps: Annotated[int, typer.Option(help="Most model calls in the run.")] = 6,
) -> None:
    """Ask the default assistant (calculator and clock tools) and watch it work."""
    from llmos.agents import Budget, ErrorEvent
    from llmos.agents.assistant import assistant
    from llmos.render import EventRenderer

    agent = assistant(model)
    agent.budget = Budget(max_steps=max_steps)
    render = EventRenderer(console)

    async def main() -> bool:
        ok = True
        async for event in agent.stream(question):
            render(event)
            ok = ok and not isinstance(event, ErrorEvent)
        await agent.model.aclose()
        return ok

    if not _run(main()):
        raise typer.Exit(1)


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """List the models llmos knows by name."""
    if ctx.invoked_subcommand is not None:
        return
    from llmos.config import get_settings
    from llmos.llm import known_models

    table = Table("name", "backend", "prepared", "description")
    for info in known_models():
        table.add_row(info.name, info.backend, "yes" if info.prepared else "no", info.description)
    console.print(table)
    console.print(f"[dim]Default: {get_settings().model}. Prepare one with `llmos models prepare NAME`.[/]")


@models_app.command("prepare")
def prepare(name: Annotated[str, typer.Argument(help="A model name from `llmos models`.")]) -> None:
    """Assemble, check and convert a model's weights once, so that it loads in seconds."""
    from llmos.errors import ModelNotFoundError
    from llmos.llm.local.catalog import CATALOG
    from llmos.llm.local.catalog import prepare as prepare_model

    def run() -> None:
        if name not in CATALOG:
            raise ModelNotFoundError(f"Unknown model '{name}'. Known names: {', '.join(CATALOG)}.")
        path = prepare_model(name)
        console.print(f"[green]{name} is ready:[/] {path}")

    _guard(run)


def _run(coro) -> bool:
    return _guard(lambda: asyncio.run(coro))


def _guard(fn) -> bool:
    """Run fn; an llmos error becomes a red message and exit code 1, never a traceback."""
    try:
        result = fn()
    except LLMOSError as exc:
        console.print(f"[bold red]{type(exc).__name__}:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    return True if result is None else result


def main() -> None:
    app()
