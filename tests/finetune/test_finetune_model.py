"""A tiny fine-tune of the real 0.5B model: the loss moves, a killed run resumes, the adapter answers by name.

Bounded to stay near a minute on 2 busy cores: ten short dialogues, three steps of two
chats, LoRA on the last two layers only, answers of at most 8 tokens.
"""

from __future__ import annotations

import csv

import pytest

from llmos.config import get_settings
from llmos.finetune import FinetuneSettings, Reporter, finetune, read_manifest
from llmos.finetune.adapters import weights_sha256
from llmos.llm import ChatRequest, UserMessage, get_model
from llmos.llm.local import model_dir, prepare
from tests.conftest import LOCAL_MODEL_NAME

pytestmark = pytest.mark.model


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh LLMOS_HOME that sees the prepared model of the usual one (no second copy)."""
    prepare(LOCAL_MODEL_NAME, progress=False)
    models = model_dir(LOCAL_MODEL_NAME).parent
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "models").symlink_to(models)
    yield tmp_path / "home"
    get_settings.cache_clear()


@pytest.fixture
def dialogues(tmp_path):
    path = tmp_path / "support.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer"])
        for i, item in enumerate(["parcel", "invoice", "refund", "password", "order", "card", "address", "plan", "seat", "voucher"]):
            writer.writerow([f"Help with my {item}, please.", f"Ticket T-{100 + i} opened for your {item}. Fjordline support."])
    return path


class StopAfter(Reporter):
    def __init__(self, step: int | None = None) -> None:
        self.stop, self.starts = step, []

    def start(self, first_step, steps):
        self.starts.append(first_step)

    def step(self, step, steps, loss, tokens_per_s):
        if step == self.stop:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a run


async def test_tiny_finetune_resumes_saves_and_answers_by_name(home, dialogues):
    settings = FinetuneSettings(steps=3, batch_size=2, grad_accumulation=1, rank=4, alpha=8, top_layers=2,
                                max_length=96, lr=2e-3, warmup_steps=0, validation=0.2)
    with pytest.raises(KeyboardInterrupt):
        finetune(dialogues, "fjord", settings, checkpoint_every=1, threads=2, reporter=StopAfter(2))
    assert (home / "adapters" / "fjord" / "checkpoints" / "step-000001").is_dir()  # step 2 was cut short

    resumed = StopAfter()
    manifest = finetune(dialogues, "fjord", settings, checkpoint_every=1, threads=2, reporter=resumed)
    assert resumed.starts == [1] and manifest.resumed == 1
    assert manifest.loss_after < manifest.loss_before  # three steps on the answers' pattern already help
    assert manifest.base == LOCAL_MODEL_NAME and manifest.base_sha256 == weights_sha256(model_dir(LOCAL_MODEL_NAME))
    assert read_manifest(home / "adapters" / "fjord") == manifest

    model = get_model(f"{LOCAL_MODEL_NAME}+fjord")
    try:
        response = await model.chat(ChatRequest(messages=[UserMessage(content="Help with my parcel, please.")], max_tokens=8))
    finally:
        await model.aclose()
    assert response.model == f"{LOCAL_MODEL_NAME}+fjord"
    assert response.text.strip() and response.usage.completion_tokens <= 8
