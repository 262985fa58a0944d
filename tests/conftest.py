"""Shared pytest fixtures."""

from __future__ import annotations

import asyncio

import pytest

LOCAL_MODEL_NAME = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="session")
def local_model():
    """The default in-process model, prepared if needed and loaded once for the whole session.

    Fails (with what to run) when its weights are not installed: `make test` installs them.
    The model serves any event loop, so function-scoped async tests can share it.
    """
    from llmos.llm.local import LocalModel, prepare

    prepare(LOCAL_MODEL_NAME, progress=False)
    model = LocalModel.from_catalog(LOCAL_MODEL_NAME)
    asyncio.run(model.load())
    yield model
    asyncio.run(model.aclose())
