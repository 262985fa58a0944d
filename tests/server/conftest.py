"""A real uvicorn server on a free port, in a thread, stopped in a finally."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import uvicorn

from llmos.agents import Agent, Team
from llmos.llm import ToolCall
from llmos.server import KeyStore, ServerSettings, create_app
from llmos.tools import RunContext, tool
from tests.scripted import ScriptedModel

ORDERS = {"C001": ["O1001"], "C002": ["O2002"]}


@tool
def my_orders(ctx: RunContext) -> list[str]:
    """The signed-in customer's orders."""
    if ctx.user is None:
        raise PermissionError("no signed-in customer")
    return ORDERS.get(ctx.user, [])


@tool
def order_status(order_id: str, ctx: RunContext) -> str:
    """The status of one of the signed-in customer's orders.

    Args:
        order_id: The order, like O1001.
    """
    if order_id not in ORDERS.get(ctx.user or "", []):
        raise PermissionError(f"order {order_id} is not one of this customer's orders")
    return f"{order_id} shipped (tenant {ctx.tenant})"


def route(name: str) -> str:
    return json.dumps({"route": name})


def support_team(script: list) -> tuple[Team, ScriptedModel]:
    """A team with one support specialist; the scripted model answers the routing call first."""
    model = ScriptedModel([route("support"), *script])
    support = Agent("support", description="Orders.", tools=[my_orders, order_status], model=model)
    return Team([support], model=model, name="shop"), model


def echo_agent(answers: int = 20) -> tuple[Agent, ScriptedModel]:
    """An agent whose scripted answers say how many messages it was sent."""
    model = ScriptedModel([lambda r: f"I got {len(r.messages)} messages." for _ in range(answers)])
    return Agent("echo", model=model), model


@dataclass
class Running:
    url: str  # http://127.0.0.1:PORT
    app: object

    @property
    def v1(self) -> str:
        return self.url + "/v1"


@contextmanager
def serve(app) -> Iterator[Running]:
    """Run `app` with uvicorn on 127.0.0.1 and a port the OS picks; always stopped."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Running(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def keys_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"


@pytest.fixture
def settings(keys_url) -> ServerSettings:
    return ServerSettings(keys_url=keys_url, rate_limit_per_minute=0)


def make_key(keys_url: str, tenant: str, **options) -> str:
    """A new key's secret (the store is opened and closed on its own loop)."""

    async def create() -> str:
        keys = KeyStore(keys_url)
        try:
            return (await keys.create(tenant, **options)).secret
        finally:
            await keys.aclose()

    return asyncio.run(create())


__all__ = ["Running", "create_app", "echo_agent", "make_key", "serve", "support_team", "ToolCall"]
