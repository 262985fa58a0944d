"""Shared pytest fixtures."""

from __future__ import annotations

import asyncio

import pytest

LOCAL_MODEL_NAME = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="session")
def local_model():
    """The default in-process model, prepared if needed and loaded once for the whole session.

    Skips (with what to run) when its weights are not installed. The model serves any event
    loop, so function-scoped async tests can share it.
    """
    from llmos.errors import WeightsError
    from llmos.llm.local import LocalModel, prepare

    try:
        prepare(LOCAL_MODEL_NAME, progress=False)
    except WeightsError as exc:
        pytest.skip(str(exc))
    model = LocalModel.from_catalog(LOCAL_MODEL_NAME)
    asyncio.run(model.load())
    yield model
    asyncio.run(model.aclose())
