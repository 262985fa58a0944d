"""Starting the server: what to serve, the bind check, and the app factory uvicorn's workers call.

`llmos serve` checks the address against the key store, puts its options in the environment
(LLMOS_SERVER_*) and starts uvicorn with `app_from_env` as the factory, so that every worker
process builds the same app. uvicorn stops gracefully on SIGTERM or Ctrl-C: it stops accepting,
lets requests in flight (streamed runs included) finish for `grace_seconds`, then cancels them
(their runs count as `cancelled` in /metrics).
"""

from __future__ import annotations

import asyncio
import importlib
import logging

from fastapi import FastAPI

from llmos.errors import ConfigError
from llmos.server.app import Servable, create_app
from llmos.server.keys import KeyStore
from llmos.server.observability import configure_logging
from llmos.server.settings import ServerSettings, is_loopback

log = logging.getLogger("llmos.server")
_background: set[asyncio.Task] = set()  # held here so that a loading task is not garbage-collected


def load_servable(spec: str, model: str | None = None) -> tuple[str, Servable]:
    """The team to serve and its id in /v1/models, from an assistant file (`path.toml`) or a factory
    given by import path (`package.module:function`, called with the model name; it returns (id, team))."""
    if spec.endswith(".toml"):
        from llmos.assistants import load_assistant

        assistant = load_assistant(spec, model)
        return assistant.spec.slug, assistant.team
    module, _, name = spec.partition(":")
    if not (module and name):
        raise ConfigError(
            f"Cannot serve {spec!r}: give an assistant file (a .toml path, see `llmos check`) "
            "or a factory as package.module:function."
        )
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"Cannot serve {spec!r}: {exc}. Check the import path.") from None
    return factory(model)


async def check_bind(host: str, keys: KeyStore) -> int:
    """The number of active keys; refuses a non-loopback address when there is none."""
    active = await keys.count_active()
    if active == 0 and not is_loopback(host):
        raise ConfigError(
            f"Refusing to listen on {host}: no API key exists, so anyone who can reach it could use the assistant. "
            "Create a key first (`llmos keys create --tenant NAME`), or listen on 127.0.0.1."
        )
    return active


def app_from_env() -> FastAPI:
    """The app for one uvicorn worker, from LLMOS_SERVER_* settings."""
    configure_logging()
    settings = ServerSettings()
    name, team = load_servable(settings.serve, settings.model)
    model = team.model

    async def close_model() -> None:
        await model.aclose()

    if hasattr(model, "load"):
        # An in-process model loads in the background; /readyz says when it is done.
        _start_loading(model, team)
    return create_app(settings, {name: team}, on_shutdown=[close_model])


def _start_loading(model: object, team: Servable) -> None:
    async def load() -> None:
        try:
            await model.load()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - /readyz keeps saying not ready; the log says why
            log.exception("the model could not be loaded")
            return
        try:
            # Every agent's fixed prompt start in the cache before the first message: it computes only what is new.
            if hasattr(team, "warm"):
                await team.warm()
        except Exception:  # noqa: BLE001 - only a head start is lost; requests report real failures
            log.warning("warming the team's prompts failed", exc_info=True)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop yet (factory called before uvicorn's loop): the first request loads it
    task = loop.create_task(load())
    _background.add(task)
    task.add_done_callback(_background.discard)
