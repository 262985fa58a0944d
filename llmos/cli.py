"""The `llmos` command."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from llmos.errors import ConfigError, LLMOSError
from llmos.commands import run_command

app = typer.Typer(help="llmos: multi-agent, tool-using assistants.", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="List known models, or prepare one.", invoke_without_command=True)
app.add_typer(models_app, name="models")
console = Console(highlight=False, soft_wrap=True)
log = logging.getLogger("llmos.cli")

# Default wall-time budgets: a run always ends, even against a server that trickles or hangs.
ASK_SECONDS = 600.0
TEAM_SECONDS = 1800.0  # a team goal on the in-process model of a 2-core machine takes several minutes
SERVABLE_TEAMS = {"demo": "llmos.demo.team:served"}  # short names for `llmos serve --team`
DEMO_CUSTOMER = "C001"  # the demo's signed-in customer: Maya Lindqvist, who owns order O1090


@app.command()
def check(file: Annotated[Path, typer.Argument(help="An assistant file (.toml).")]) -> None:
    """Check an assistant file: prints every mistake with its field and what to write instead."""
    from llmos.assistants import check_file

    spec, problems = check_file(file)
    for problem in problems:
        console.print(f"[red]error[/] {problem}")
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s).[/]")
        raise typer.Exit(1)
    names = ", ".join(f"{s.name} ({s.kind})" for s in spec.specialists)
    console.print(f"[green]{file} is a valid assistant:[/] {spec.name}; specialists: {names}.")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[Optional[str], typer.Option(help="Model name or folder (default: LLMOS_MODEL).")] = None,
    max_steps: Annotated[int, typer.Option(help="Most model calls in the run.")] = 6,
    max_seconds: Annotated[float, typer.Option(help="Wall-time budget of the run, in seconds.")] = ASK_SECONDS,
    assistant_file: Annotated[
        Optional[Path], typer.Option("--assistant", help="Ask the team of this assistant file instead.")
    ] = None,
    user: Annotated[Optional[str], typer.Option(help="The signed-in customer the tools act for (with --assistant).")] = None,
) -> None:
    """Ask the default assistant (calculator and clock tools), or an assistant file's team, and watch it work."""
    if assistant_file is not None:
        _team_session(assistant_file, model, user, TEAM_SECONDS if max_seconds == ASK_SECONDS else max_seconds, question)
        return
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
        console.print("[dim]Loading the models...[/]")
        if hasattr(chat_model, "load"):  # an in-process model; a server's is loaded already
            await chat_model.load()
        await asyncio.to_thread(stores.load)
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
    user: Annotated[Optional[str], typer.Option(help="The signed-in customer the tools act for.")] = None,
    max_seconds: Annotated[float, typer.Option(help="Wall-time budget of each turn, in seconds.")] = TEAM_SECONDS,
    assistant_file: Annotated[
        Optional[Path], typer.Option("--assistant", help="Chat with this assistant file's team (default: the demo's).")
    ] = None,
    session: Annotated[
        Optional[str], typer.Option(help="Keep the conversation in this session (resumed after a restart).")
    ] = None,
    tenant: Annotated[str, typer.Option(help="The tenant of the session (an assistant file names its own).")] = "default",
) -> None:
    """Chat with an assistant file's team (default: the demo company's); the conversation is kept between turns.
    Empty line or Ctrl-D ends.

    With --session the conversation is stored (LLMOS_MEMORY_URL, default SQLite under LLMOS_HOME),
    and facts about the user are remembered for their later sessions.
    """
    if assistant_file is not None:
        _team_session(assistant_file, model, user, max_seconds, None, session=session)
        return
    user = user or DEMO_CUSTOMER
    from llmos.demo import prepare_demo
    from llmos.demo.team import demo_team
    from llmos.llm import get_model
    from llmos.render import TerminalApprover
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
        await _converse(team, context, question=None, session=session)
        await chat_model.aclose()

    _run(main())


async def _converse(team, context, *, question: str | None, session: str | None) -> bool:
    """One question, or turns read from the terminal until an empty line; False when a turn failed.

    With a session the history comes from the team's memory (and the memory is closed at the end);
    without one it is kept here, between turns. A chat that resumes a session whose last message
    has no answer (its run failed, or the process stopped) offers to answer it first.
    """
    history, ok = [], True
    # While the user types, the model reads every agent's fixed prompt start: the first turn computes only what is new.
    warming = asyncio.create_task(_warm(team)) if question is None else None
    try:
        if session and question is None:
            ok = await _offer_retry(team, context, session)
        while True:
            text = question
            if text is None:
                text = await _read("[bold]you>[/] ")
                if text is None or not text.strip():
                    break
            if session:
                events = team.stream(text, session=session, context=context)
            else:
                events = team.stream(text, history=history, context=context)
            answered, history = await _show(events, history, chatting=question is None)
            ok = ok and answered
            if question is not None:
                break
    finally:
        if warming is not None:
            warming.cancel()
        if team.memory is not None:
            await team.memory.close()
    return ok


async def _warm(team) -> None:
    try:
        await team.warm()
    except Exception:  # noqa: BLE001 - only a head start is lost: the first turn reports a real failure
        log.debug("warming the team's prompts failed", exc_info=True)


async def _read(prompt: str) -> str | None:
    """A line from the terminal; None at its end (Ctrl-D)."""
    try:
        return await asyncio.to_thread(console.input, prompt)
    except EOFError:
        return None


async def _show(events, history: list, *, chatting: bool) -> tuple[bool, list]:
    """Render a turn's events; whether it was answered, and the conversation after it."""
    from llmos.agents import ErrorEvent, FinalEvent
    from llmos.render import EventRenderer

    render, ok = EventRenderer(console), True
    async for event in events:
        render(event)
        if isinstance(event, FinalEvent) and event.subtask is None:
            history = event.result.messages
        elif isinstance(event, ErrorEvent) and event.subtask is None:
            ok = False
            if chatting:
                console.print("[dim]That turn failed; the conversation so far is kept.[/]")
    return ok, history


async def _offer_retry(team, context, session: str) -> bool:
    """When the session's last message has no answer, offer to answer it now (Memory.begin_retry)."""
    memory = team.memory
    turns = await memory.store.turns(session, tenant=context.tenant or "default")
    if not turns or turns[-1].status == "answered":
        return True
    last = turns[-1]
    why = f" ({last.error[:200]})" if last.error else " (its run stopped before the answer)"
    console.print(f"[dim]Your last message, turn {last.number}, has no answer{why}:[/] {last.user_message.message.content}")
    reply = await _read("Answer it now? [Y/n] ")
    if reply is None or reply.strip().lower() not in ("", "y", "yes"):
        console.print(f"[dim]Left unanswered; `llmos chat --session {session}` offers it again.[/]")
        return True
    try:
        begun = await memory.begin_retry(team, session=session, turn=last.number, context=context)
    except LLMOSError as exc:  # e.g. the session is busy: another process is answering it
        console.print(f"[bold red]{type(exc).__name__}:[/] {exc}")
        return False
    ok, _ = await _show(begun.events(), [], chatting=True)
    return ok


def _team_session(
    path: Path, model: str | None, user: str | None, max_seconds: float, question: str | None, *, session: str | None = None
) -> None:
    """One question (`question`) or a chat (None) with the team of an assistant file, in a stored session if named."""
    from llmos.assistants import load_assistant
    from llmos.render import TerminalApprover

    async def main() -> bool:
        console.print(f"[dim]Loading {path} (knowledge folders are synced on each load)...[/]")
        assistant = await asyncio.to_thread(load_assistant, path, model)
        team = assistant.team
        team.budget = team.budget.model_copy(update={"max_seconds": max_seconds})
        context = assistant.context(user=user, approver=TerminalApprover(console))
        console.print(f"[dim]{assistant.spec.name}. Signed in as {user or 'nobody'}. "
                      f"Budget: {team.budget.max_steps} model calls, {max_seconds:g} s.[/]")
        if session:
            if not user:
                raise ConfigError("--session keeps a user's conversation: name the user with --user.")
            team.memory = await _open_session(session, context.tenant or "default", user, assistant.model)
        ok = await _converse(team, context, question=question, session=session)
        await assistant.model.aclose()
        return ok

    if not _run(main()) and question is not None:
        raise typer.Exit(1)


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
    turns = f"{info.turns} turn{'' if info.turns == 1 else 's'}"
    console.print(f"[dim]{said} session {session} ({turns} so far); `llmos sessions show {session}` shows it.[/]")
    return memory


from llmos.memory.cli import register as _register_memory  # noqa: E402  (sessions, memory)
_register_memory(app)


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """List the models llmos knows by name."""
    if ctx.invoked_subcommand is not None:
        return
    from llmos.config import get_settings
    from rich.table import Column

    from llmos.llm import known_models

    # Names and engines are typed back: never cut; the rest wraps in a narrow terminal.
    table = Table(Column("name", no_wrap=True), "backend", Column("engine", no_wrap=True), "quantization", "prepared", "description")
    for info in known_models():
        prepared = "yes" if info.prepared else "no"
        table.add_row(info.name, info.backend, info.engine, info.quantization, prepared, info.description)
    console.print(table)
    console.print(
        f"[dim]Default: {get_settings().model}. Prepare one with `llmos models prepare NAME`. "
        "Engine: LLMOS_LOCAL_ENGINE=transformers|llamacpp.[/]"
    )


@models_app.command("prepare")
def prepare(name: Annotated[str, typer.Argument(help="A model name from `llmos models`.")]) -> None:
    """Assemble and check a model's weights once (and convert them for transformers), so that it loads in seconds."""
    from llmos.config import get_settings
    from llmos.errors import ModelNotFoundError
    from llmos.llm.local.catalog import CATALOG, prepare_gguf
    from llmos.llm.local.catalog import prepare as prepare_model

    def run() -> None:
        if name not in CATALOG:
            raise ModelNotFoundError(f"Unknown model '{name}'. Known names: {', '.join(CATALOG)}.")
        path = prepare_gguf(name) if get_settings().local_engine == "llamacpp" else prepare_model(name)
        console.print(f"[green]{name} is ready:[/] {path}")

    _guard(run)


@app.command("serve-model")
def serve_model(
    model: Annotated[Optional[str], typer.Argument(help="Catalog name or model folder (default: LLMOS_MODEL).")] = None,
    port: Annotated[int, typer.Option(help="Port of the server, on 127.0.0.1.")] = 8011,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the command and its environment.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to answer.")] = 600.0,
    adapter: Annotated[
        Optional[list[str]],
        typer.Option(help="Serve a LoRA adapter too: NAME=PATH, or the NAME of one under LLMOS_HOME/adapters (repeatable)."),
    ] = None,
) -> None:
    """Serve a model with vLLM (OpenAI-compatible API) in the foreground, until Ctrl-C.
    With --adapter, clients ask for an adapter by its NAME as the model."""
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
        parse_adapters,
        served_name,
        start_server,
        wait_until_ready,
    )

    try:
        config = VLLMServerConfig(model=model or get_settings().model, port=port, adapters=parse_adapters(adapter or []))
    except LLMOSError as exc:
        console.print(f"[bold red]{type(exc).__name__}:[/] {exc}")
        raise typer.Exit(1) from None

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
            for name in config.adapters:
                print(f"  # or, with the adapter: export LLMOS_MODEL={name}")
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


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs API keys.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    team: Annotated[
        str, typer.Option(help="What to serve: 'demo' (the demo company's team), or a factory as module:function.")
    ] = "demo",
    assistant_file: Annotated[
        Optional[Path], typer.Option("--assistant", help="Serve this assistant file's team instead of --team.")
    ] = None,
    model: Annotated[Optional[str], typer.Option(help="The team's model (default: LLMOS_MODEL).")] = None,
    grace: Annotated[float, typer.Option(help="Seconds runs in flight may take to finish on shutdown.")] = 30.0,
    keys_url: Annotated[Optional[str], typer.Option(help="API keys database URL (default: under LLMOS_HOME).")] = None,
    knowledge: Annotated[
        Optional[Path], typer.Option(help="Where tenants' uploaded documents live (default: LLMOS_HOME/server/knowledge).")
    ] = None,
) -> None:
    """Serve a team over HTTP: an OpenAI-compatible API (/v1/chat/completions), each tenant's documents
    (/v1/knowledge), a web chat (/), /healthz, /readyz, /metrics."""
    import os

    from llmos.server.keys import KeyStore
    from llmos.server.launch import check_bind

    def run() -> None:
        try:
            import uvicorn
        except ImportError:
            raise LLMOSError("The server needs its extra: pip install 'llmos[server]'.") from None

        async def count() -> int:
            keys = KeyStore(keys_url or _keys_url_setting())
            try:
                return await check_bind(host, keys)
            finally:
                await keys.aclose()

        active = asyncio.run(count())
        if active == 0:
            console.print(
                f"[yellow]No API key exists: listening on {host} only, for local clients, without keys.[/] "
                "Create keys with `llmos keys create --tenant NAME` to serve other machines."
            )
        else:
            console.print(f"[dim]{active} active API key(s): every /v1 request needs one.[/]")
        served = str(assistant_file.resolve()) if assistant_file is not None else SERVABLE_TEAMS.get(team, team)
        if assistant_file is not None:
            from llmos.assistants import check_file

            _, problems = check_file(assistant_file)  # before the workers start: one clear message here
            if problems:
                raise ConfigError("The assistant file has problems:\n" + "\n".join(f"- {p}" for p in problems))
        settings = {"HOST": host, "PORT": str(port), "WORKERS": str(workers), "SERVE": served,
                    "GRACE_SECONDS": str(grace), "MODEL": model, "KEYS_URL": keys_url,
                    "KNOWLEDGE_PATH": str(knowledge.resolve()) if knowledge is not None else None}
        for name, value in settings.items():
            if value is not None:
                os.environ[f"LLMOS_SERVER_{name}"] = value
        console.print(f"Serving '{team}' on http://{host}:{port}/v1 ({workers} worker(s)), web chat at http://{host}:{port}/. Ctrl-C stops.")
        uvicorn.run(
            "llmos.server.launch:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_graceful_shutdown=grace,
            log_level="info",
        )

    _guard(run)


keys_app = typer.Typer(help="API keys of the server: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
KeysUrl = Annotated[Optional[str], typer.Option(help="API keys database URL (default: under LLMOS_HOME).")]


def _with_keys(keys_url: str | None, work):
    from llmos.server.keys import KeyStore

    async def main():
        keys = KeyStore(keys_url or _keys_url_setting())
        try:
            return await work(keys)
        finally:
            await keys.aclose()

    return asyncio.run(main())


def _keys_url_setting() -> str | None:
    from llmos.server.settings import ServerSettings

    return ServerSettings().keys_url


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="The tenant (customer company) the key belongs to.")],
    operator: Annotated[bool, typer.Option("--operator", help="A key for the tenant's staff, not for chatting.")] = False,
    user: Annotated[Optional[str], typer.Option(help="The one end user this key acts for.")] = None,
    sets_user: Annotated[
        bool, typer.Option("--sets-user", help="A backend key: names its signed-in user in the X-LLMOS-User header.")
    ] = False,
    label: Annotated[str, typer.Option(help="A note shown by `llmos keys list`.")] = "",
    keys_url: KeysUrl = None,
) -> None:
    """Create an API key. Its secret is printed once: store it now."""

    def run() -> None:
        role = "operator" if operator else "customer"
        made = _with_keys(keys_url, lambda k: k.create(tenant, role=role, user=user, sets_user=sets_user, label=label))
        console.print(f"[green]Created {made.key.id}[/] ({role} key of tenant {tenant}). The secret, shown only now:")
        print(made.secret)

    _guard(run)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[Optional[str], typer.Option(help="Only this tenant's keys.")] = None, keys_url: KeysUrl = None
) -> None:
    """List API keys (never their secrets)."""

    def run() -> None:
        table = Table("tenant", "role", "user", "created", "status", "label")
        table.add_column("id", no_wrap=True, min_width=16)  # whole, to be pasted into `llmos keys revoke`
        for k in _with_keys(keys_url, lambda keys: keys.list_keys(tenant=tenant)):
            who = k.user or ("(header)" if k.sets_user else "-")  # a backend key: X-LLMOS-User
            status = "active" if k.active else f"revoked {k.revoked_at:%Y-%m-%d %H:%M}"
            table.add_row(k.tenant, k.role, who, f"{k.created_at:%Y-%m-%d %H:%M}", status, k.label, k.id)
        console.print(table)

    _guard(run)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `llmos keys list`).")], keys_url: KeysUrl = None) -> None:
    """Revoke an API key: requests with it are refused from now on."""

    def run() -> None:
        key = _with_keys(keys_url, lambda k: k.revoke(key_id))
        console.print(f"Revoked {key.id} (tenant {key.tenant}).")

    _guard(run)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _run(coro) -> bool:
    return _guard(lambda: asyncio.run(coro))


def _guard(fn) -> bool:
    """Run fn; an llmos error becomes a red message and exit code 1, never a traceback."""
    result = run_command(fn, console)
    return True if result is None else result


def main() -> None:
    app()


from llmos.knowledge.cli import register as _register_knowledge  # noqa: E402  (ingest, search, kb, eval)
_register_knowledge(app)
from llmos.classifiers.cli import register as _register_classifiers  # noqa: E402  (train classifier, eval classifier)
_register_classifiers(app)
from llmos.finetune.cli import register as _register_finetune  # noqa: E402  (finetune, eval dialogue)
_register_finetune(app)
