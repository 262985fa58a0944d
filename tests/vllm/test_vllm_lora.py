"""An adapter trained by `llmos finetune`, served by a real vLLM server beside its base model.

The server gets its own port (LLMOS_TEST_VLLM_PORT + 1): it starts with --enable-lora and
the adapter registered, and llmos asks for the adapter by name, plainly or as BASE+ADAPTER.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmos.config import get_settings
from llmos.llm import ChatRequest, UserMessage, get_model
from llmos.llm.openai import OpenAIModel
from tests.vllm.conftest import MODEL, PORT

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def lora_url(tmp_path_factory) -> Iterator[str]:
    from llmos.finetune import FinetuneSettings, finetune
    from llmos.llm.vllm_server import VLLMServerConfig, start_server, wait_until_ready

    root = tmp_path_factory.mktemp("lora")
    data = root / "support.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer"])
        for i in range(6):
            writer.writerow([f"Where is parcel {i}?", f"Parcel {i} is on its way. Fjordline support."])
    # One step is enough: vLLM must load and apply it, not make it good.
    settings = FinetuneSettings(steps=1, batch_size=2, grad_accumulation=1, rank=8, top_layers=2, max_length=64, validation=0)
    finetune(data, "fjord", settings, out=root / "fjord")
    config = VLLMServerConfig(model=MODEL, port=PORT + 1, adapters={"fjord": root / "fjord"})
    handle = start_server(config, log_path=Path(tempfile.gettempdir()) / f"llmos-test-vllm-{PORT + 1}.log")
    try:
        wait_until_ready(handle.base_url, 600, handle=handle)
        yield handle.base_url
    finally:
        handle.stop()


def test_the_server_lists_the_adapter_beside_its_base(lora_url):
    listed = {m["id"] for m in httpx.get(f"{lora_url}/models", timeout=10).json()["data"]}
    assert {MODEL, "fjord"} <= listed


async def test_llmos_selects_the_adapter_by_model_name(lora_url, monkeypatch):
    model = OpenAIModel("fjord", lora_url)
    try:
        response = await model.chat(ChatRequest(messages=[UserMessage(content="Where is parcel 3?")], max_tokens=12))
    finally:
        await model.aclose()
    assert response.text.strip() and response.usage.completion_tokens <= 12

    monkeypatch.setenv("LLMOS_BASE_URL", lora_url)
    get_settings.cache_clear()
    try:
        named = get_model(f"{MODEL}+fjord")  # the in-process name works against the server too
        assert named.name == "fjord"
        response = await named.chat(ChatRequest(messages=[UserMessage(content="Where is parcel 1?")], max_tokens=12))
        await named.aclose()
    finally:
        get_settings.cache_clear()
    assert response.text.strip()
