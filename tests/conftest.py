"""Shared pytest fixtures."""

from __future__ import annotations

import asyncio

import pytest

LOCAL_MODEL_NAME = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="session")
def local_model():
    """The default in-process model, prepared if needed and loaded once for the whole session,
    on the engine LLMOS_LOCAL_ENGINE names (llamacpp by default, or transformers).

    Fails (with what to run) when its weights are not installed: `make test` installs them.
    The model serves any event loop, so function-scoped async tests can share it.
    """
    from llmos.config import get_settings
    from llmos.llm.local import LlamaCppModel, LocalModel, prepare, prepare_gguf

    if get_settings().local_engine == "llamacpp":
        prepare_gguf(LOCAL_MODEL_NAME, progress=False)
        model = LlamaCppModel.from_catalog(LOCAL_MODEL_NAME)
    else:
        prepare(LOCAL_MODEL_NAME, progress=False)
        model = LocalModel.from_catalog(LOCAL_MODEL_NAME)
    asyncio.run(model.load())
    yield model
    asyncio.run(model.aclose())


@pytest.fixture
def recorded_model(local_model):
    """The local model, keeping every request it is sent in `.requests` (what a test checks the prompts with)."""
    from llmos.llm.model import ChatModel

    class Recorded(ChatModel):
        name = local_model.name

        def __init__(self) -> None:
            self.requests = []

        def _stream(self, request):
            self.requests.append(request)
            return local_model._stream(request)

    return Recorded()


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL cluster for the test session, in a temporary folder (llmos.memory.testing.TempPostgres),
    stopped by its PID when the session ends, also after failures. Tests using it carry the `postgres` marker."""
    from llmos.memory.testing import TempPostgres

    # Commits behave as in production; only the server's own crash safety (fsync) is off: no test crashes it.
    server = TempPostgres(settings={"fsync": "off"})
    try:
        server.start()
        yield server
    finally:
        server.stop()
