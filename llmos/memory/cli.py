"""Memory commands: `llmos sessions list|show|delete` and `llmos memory list|forget`.

`register(app)` adds them to the main `llmos` app. They read the session database of
LLMOS_MEMORY_URL (default: SQLite under LLMOS_HOME), the one `llmos chat --session` writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from llmos.errors import LLMOSError

console = Console(highlight=False, soft_wrap=True)
sessions_app = typer.Typer(help="Conversations kept in the session database.", no_args_is_help=True)
memory_app = typer.Typer(help="What the assistant remembers about each user.", no_args_is_help=True)

Tenant = Annotated[str, typer.Option(help="The tenant.")]
User = Annotated[str, typer.Option("--user", help="The user's id.")]


def _with_store(work: Callable[[Any], Awaitable[None]]) -> None:
    """Run `work(store)` on the session database; an llmos error is a red line and exit code 1."""
    from llmos.memory import SQLSessionStore

    async def main() -> None:
        store = SQLSessionStore()
        try:
            await work(store)
        finally:
            await store.close()

    try:
        asyncio.run(main())
    except LLMOSError as exc:
        console.print(f"[bold red]{type(exc).__name__}:[/] {exc}")
        raise typer.Exit(1) from None


@sessions_app.command("list")
def sessions_list(
    tenant: Tenant = "default",
    user: Annotated[Optional[str], typer.Option(help="Only this user's sessions.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, latest first.")] = 50,
) -> None:
    """The tenant's sessions, most recently used first."""

    async def work(store) -> None:
        table = Table("session", "user", "turns", "title", "updated")
        for s in await store.list_sessions(tenant=tenant, user=user, limit=limit):
            table.add_row(s.id, s.user or "", str(s.turns), s.title, s.updated_at.strftime("%Y-%m-%d %H:%M"))
        console.print(table)

    _with_store(work)


@sessions_app.command("show")
def sessions_show(name: Annotated[str, typer.Argument(help="The session's name.")], tenant: Tenant = "default") -> None:
    """A session turn by turn: messages, outcome, tool calls, tokens; and its running summary."""

    async def work(store) -> None:
        info = await store.get_session(name, tenant=tenant)
        console.print(f"[bold]{info.id}[/] (tenant {info.tenant}, user {info.user or '-'}, {info.turns} turns)")
        summary = await store.summary(name, tenant=tenant)
        if summary:
            console.print(f"[dim]Summary of turns 1-{summary.through_turn}:[/] {summary.text}")
        turns = await store.turns(name, tenant=tenant)
        for turn in turns:
            console.print(f"\n[bold]Turn {turn.number}[/] [dim]({turn.status})[/]")
            console.print(f"[bold]you>[/] {turn.user_message.message.content}")
            for m in turn.messages:
                if m.message.role == "assistant" and m.message.content:
                    console.print(f"[bold]assistant>[/] {m.message.content}")
            if turn.record is not None:
                r = turn.record
                calls = ", ".join(c.name for c in r.tool_calls) or "none"
                latency = f"{r.latency_s:.1f} s" if r.latency_s is not None else "-"
                console.print(
                    f"[dim]outcome {r.outcome or '-'}; tools: {calls}; {r.model_calls} model calls, "
                    f"{r.usage.total_tokens} tokens, {latency}[/]"
                )
            if turn.error:
                console.print(f"[red]failed:[/] {turn.error}")
        if turns and turns[-1].status != "answered":
            console.print(
                f"\n[dim]Turn {turns[-1].number} has no answer (yet, if it still runs): `llmos chat --session {name}` "
                f"offers to answer it; over HTTP, POST /v1/sessions/{name}/turns/{turns[-1].number}/retry.[/]"
            )

    _with_store(work)


@sessions_app.command("delete")
def sessions_delete(name: Annotated[str, typer.Argument(help="The session's name.")], tenant: Tenant = "default") -> None:
    """Delete a session with its messages, turns and summary."""

    async def work(store) -> None:
        await store.delete_session(name, tenant=tenant)
        console.print(f"Deleted session {name} of tenant {tenant}.")

    _with_store(work)


@memory_app.command("list")
def memory_list(user: User, tenant: Tenant = "default") -> None:
    """The facts remembered about a user."""
    from llmos.memory import UserMemory

    async def work(store) -> None:
        facts = await UserMemory(store).list(user, tenant=tenant)
        table = Table("id", "kind", "fact", "learnt in", "updated")
        for f in facts:
            table.add_row(str(f.id), f.kind, f.text, f.session or "", f.updated_at.strftime("%Y-%m-%d %H:%M"))
        console.print(table)
        if not facts:
            console.print(f"[dim]Nothing is remembered about {user} in tenant {tenant}.[/]")

    _with_store(work)


@memory_app.command("forget")
def memory_forget(
    user: User,
    tenant: Tenant = "default",
    fact: Annotated[Optional[int], typer.Option(help="Only this fact (an id from `llmos memory list`).")] = None,
    everything: Annotated[
        bool, typer.Option("--everything", help="Delete the user entirely: their sessions too, not only their facts.")
    ] = False,
) -> None:
    """Forget what is remembered about a user: one fact, all facts, or (--everything) the user and their sessions."""
    from llmos.memory import UserMemory

    async def work(store) -> None:
        memory = UserMemory(store)
        if fact is not None:
            await memory.forget(fact, user=user, tenant=tenant)
            console.print(f"Forgot fact {fact} of {user}.")
        elif everything:
            facts = len(await memory.list(user, tenant=tenant))
            sessions = await store.delete_user(user, tenant=tenant)
            console.print(f"Deleted user {user} of tenant {tenant}: {sessions} sessions and {facts} facts.")
        else:
            console.print(f"Forgot {await memory.forget_all(user, tenant=tenant)} facts of {user}.")

    _with_store(work)


def register(app: typer.Typer) -> None:
    app.add_typer(sessions_app, name="sessions")
    app.add_typer(memory_app, name="memory")
