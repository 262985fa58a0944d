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
console = Console(highlight=False, soft_wrap=True)

# Default wall-time budgets: a run always ends, even against a server that trickles or hangs.
ASK_SECONDS = 600.0
TEAM_SECONDS = 1800.0  # a team goal on the in-process model of a 2-core machine takes several minutes
DEMO_CUSTOMER = "C001"  # the demo's signed-in customer: Maya Lindqvist, who owns order O1090


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[Optional[str], typer.Option(help="Model name or folder (default: LLMOS_MODEL).")] = None,
    max_steps: Annotated[int, typer.Option(help="Most model calls in the run.")] = 6,
    max_seconds: Annotated[float, typer.Option(help="Wall-time budget of the run, in seconds.")] = ASK_SECONDS,
) -> None:
    """Ask the default assistant (calculator and clock tools) and watch it work."""
    from llmos.agents import Budget, ErrorEvent
    from llmos.agents.assistant import assistant
    from llmos.render import EventRenderer, TerminalApprover
    from llmos.tools import RunContext

    agent = assistant(model)
    agent.budget = Budget(max_steps=max_steps, max_seconds=max_seconds)
    render = EventRenderer(console)
    console.print(f"[dim]Budget: {max_steps} model calls, {max_seconds:g} s.[/]")

    async def main() -> bool:
        ok = True
        async for event in agent.stream(question, context=RunContext(approver=TerminalApprover(console))):
            render(event)
            ok = ok and not isinstance(event, ErrorEvent)
        await agent.model.aclose()
        return ok

    if not _run(main()):
        raise typer.Exit(1)


@app.command()
def demo(
    goal: Annotated[Optional[str], typer.Argument(help="The goal (default: the demo's three-part request).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model name or folder (default: LLMOS_MODEL).")] = None,
    user: Annotated[str, typer.Option(help="The signed-in customer the tools act for.")] = DEMO_CUSTOMER,
    max_seconds: Annotated[float, typer.Option(help="Wall-time budget of the run, in seconds.")] = TEAM_SECONDS,
) -> None:
    """Run the demo company's team on a goal with several intents: plan, parallel subtasks, cited answer."""
    from rich.panel import Panel

    from llmos.agents import ErrorEvent
    from llmos.demo import prepare_demo
    from llmos.demo.team import DEMO_GOAL, demo_team
    from llmos.llm import get_model
    from llmos.render import EventRenderer, TerminalApprover
    from llmos.tools import RunContext

    goal = goal or DEMO_GOAL

    async def main() -> bool:
        console.print("[dim]Preparing the demo company (once): policies, catalog, customers, reviews...[/]")
        stores = prepare_demo()
        chat_model = get_model(model)
        team = demo_team(stores, chat_model)
        team.budget = team.budget.model_copy(update={"max_seconds": max_seconds})
        console.print(Panel(goal, title="Goal"))
        console.print(f"[dim]Signed in as {user}. Budget: {team.budget.max_steps} model calls, {max_seconds:g} s.[/]")
        render, ok = EventRenderer(console), True
        context = RunContext(user=user, approver=TerminalApprover(console))
        async for event in team.stream(goal, context=context):
            render(event)
            ok = ok and not (isinstance(event, ErrorEvent) and event.subtask is None)
        await chat_model.aclose()
        return ok

    if not _run(main()):
        raise typer.Exit(1)


@app.command()
def chat(
    model: Annotated[Optional[str], typer.Option(help="Model name or folder (default: LLMOS_MODEL).")] = None,
    user: Annotated[str, typer.Option(help="The signed-in customer the tools act for.")] = DEMO_CUSTOMER,
    max_seconds: Annotated[float, typer.Option(help="Wall-time budget of each turn, in seconds.")] = TEAM_SECONDS,
    session: Annotated[
        Optional[str], typer.Option(help="Keep the conversation in this session (resumed after a restart).")
    ] = None,
    tenant: Annotated[str, typer.Option(help="The tenant of the session.")] = "default",
) -> None:
    """Chat with the demo company's team; the conversation is kept between turns. Empty line or Ctrl-D ends.

    With --session the conversation is stored (LLMOS_MEMORY_URL, default SQLite under LLMOS_HOME),
    and facts about the user are remembered for their later sessions.
    """
    from llmos.agents import ErrorEvent, FinalEvent
    from llmos.demo import prepare_demo
    from llmos.demo.team import demo_team
    from llmos.llm import get_model
    from llmos.render import EventRenderer, TerminalApprover
    from llmos.tools import RunContext

    async def main() -> None:
        stores = prepare_demo()
        chat_model = get_model(model)
        team, history = demo_team(stores, chat_model), []
        team.budget = team.budget.model_copy(update={"max_seconds": max_seconds})
        context = RunContext(user=user, tenant=tenant, approver=TerminalApprover(console))
        console.print(f"[dim]Signed in as {user}. Each turn: {team.budget.max_steps} model calls, {max_seconds:g} s.[/]")
        if session:
            team.memory = await _open_session(session, tenant, user, chat_model)
        while True:
            try:
                text = await asyncio.to_thread(console.input, "[bold]you>[/] ")
            except EOFError:
                break
            if not text.strip():
                break
            render = EventRenderer(console)
            if session:  # the history comes from the session's store
                events = team.stream(text, session=session, context=context)
            else:
                events = team.stream(text, history=history, context=context)
            async for event in events:
                render(event)
                if isinstance(event, FinalEvent):
                    history = event.result.messages
                elif isinstance(event, ErrorEvent) and event.subtask is None:
                    console.print("[dim]That turn failed; the conversation so far is kept.[/]")
        if team.memory is not None:
            await team.memory.close()
        await chat_model.aclose()

    _run(main())


# --- sessions and memory (llmos.memory) ------------------------------------------------------


async def _open_session(session: str, tenant: str, user: str, model):
    """The Memory that `chat --session` runs with; says whether the session is new or resumed."""
    from llmos.memory import Memory

    memory = Memory(model=model)
    info = await memory.store.open_session(session, tenant=tenant, user=user)
    if info.user != user:
        from llmos.errors import SessionOwnerError

        await memory.close()
        raise SessionOwnerError(f"Session {session} belongs to {info.user or 'no user'}, not {user}: choose another name.")
    said = "Resuming" if info.turns else "Started"
    console.print(f"[dim]{said} session {session} ({info.turns} turns so far); `llmos sessions show {session}` shows it.[/]")
    return memory


from llmos.memory.cli import register as _register_memory  # noqa: E402  (sessions, memory)
_register_memory(app)


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


@app.command("serve-model")
def serve_model(
    model: Annotated[Optional[str], typer.Argument(help="Catalog name or model folder (default: LLMOS_MODEL).")] = None,
    port: Annotated[int, typer.Option(help="Port of the server, on 127.0.0.1.")] = 8011,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the command and its environment.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to answer.")] = 600.0,
) -> None:
    """Serve a model with vLLM (OpenAI-compatible API) in the foreground, until Ctrl-C."""
    import shlex
    import signal
    import time

    from llmos.config import get_settings
    from llmos.errors import ModelConnectionError
    from llmos.llm.vllm_server import (
        SETUP_HINT,
        VLLMServerConfig,
        build_command,
        build_env,
        log_tail,
        served_name,
        start_server,
        wait_until_ready,
    )

    config = VLLMServerConfig(model=model or get_settings().model, port=port)

    def dry() -> None:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in build_env(config).items())
        # print(), not rich: the command must come out unwrapped, and shell-pasteable.
        print(f"{env} {shlex.join(build_command(config))}")
        if not config.use_gpu() and not config.vllm_python.is_file():
            print(f"# note: {config.vllm_python} does not exist yet. {SETUP_HINT}")

    def serve() -> None:
        run_dir = get_settings().home / "vllm"
        handle = start_server(config, log_path=run_dir / f"{port}.log")
        signal.signal(signal.SIGTERM, _interrupt)  # a plain `kill` of llmos stops vLLM too, like Ctrl-C
        try:
            console.print(f"Starting vLLM for {handle.model} (pid {handle.pid}, log {handle.log_path}) ...")
            seconds = wait_until_ready(config.base_url, timeout, handle=handle)
            console.print(f"[green]Ready in {seconds:.0f} s:[/] {config.base_url}")
            console.print("Use it from llmos with:", soft_wrap=True)
            print(f"  export LLMOS_BASE_URL={config.base_url}\n  export LLMOS_MODEL={served_name(config)}")
            console.print(f"[dim]PID file: {handle.pid_path}. Ctrl-C stops the server.[/]", soft_wrap=True)
            while handle.alive():
                time.sleep(1.0)
            raise ModelConnectionError(
                f"The vLLM server exited with code {handle.process.returncode}. "
                f"End of {handle.log_path}:\n{log_tail(handle.log_path)}"
            )
        except KeyboardInterrupt:
            console.print("Stopping the vLLM server ...")
        finally:
            handle.stop()
        console.print(f"Stopped (pid {handle.pid}).")

    _guard(dry if dry_run else serve)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


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


from llmos.knowledge.cli import register as _register_knowledge  # noqa: E402  (ingest, search, kb, eval)
_register_knowledge(app)
