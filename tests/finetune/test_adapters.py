"""Using an adapter: by name in process, listed by `llmos models`, evaluated, served by vLLM; and the refusals."""

from __future__ import annotations

import asyncio
import csv
import json
import shutil

import pytest
from typer.testing import CliRunner

from llmos.config import get_settings
from llmos.errors import AdapterError
from llmos.finetune import FinetuneSettings, finetune, list_adapters
from llmos.finetune.adapters import split_model_name, weights_sha256
from llmos.llm import ChatRequest, UserMessage, get_model
from llmos.llm.local import LocalModel


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base):
    """An adapter 'orders' trained on the tiny base, in its own LLMOS_HOME; (home, data file, manifest)."""
    root = tmp_path_factory.mktemp("adapters")
    home, data = root / "home", root / "orders.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["q", "a"])
        for i in range(30):
            writer.writerow([f"Where is order {i}?", f"Order {i} ships on day {i % 7}."])
    patch = pytest.MonkeyPatch()
    patch.setenv("LLMOS_HOME", str(home))
    get_settings.cache_clear()
    settings = FinetuneSettings(base=str(tiny_base), question_column="q", answer_column="a", steps=4, lr=1e-2, rank=8)
    manifest = finetune(data, "orders", settings)
    patch.undo()
    get_settings.cache_clear()
    return home, data, manifest


@pytest.fixture
def home(trained, monkeypatch):
    monkeypatch.setenv("LLMOS_HOME", str(trained[0]))
    monkeypatch.delenv("LLMOS_BASE_URL", raising=False)
    monkeypatch.delenv("LLMOS_LOCAL_ENGINE", raising=False)
    get_settings.cache_clear()
    yield trained[0]
    get_settings.cache_clear()


def test_model_names_with_an_adapter():
    assert split_model_name("qwen2.5-coder-0.5b+support-lora") == ("qwen2.5-coder-0.5b", "support-lora")
    assert split_model_name("qwen2.5-coder-0.5b") is None
    assert split_model_name("+x") is None and split_model_name("x+") is None


async def test_the_adapter_loads_in_process_by_name_and_changes_the_model(home, tiny_base):
    import torch

    model = get_model(f"{tiny_base}+orders")
    base = get_model(str(tiny_base))
    try:
        assert model.name == f"{tiny_base.name}+orders"
        response = await model.chat(ChatRequest(messages=[UserMessage(content="Where is order 3?")], max_tokens=8))
        assert response.model == model.name and 1 <= response.usage.completion_tokens <= 8
        await base.load()
        ids = torch.tensor([[5, 6, 7, 8, 9]])
        with torch.no_grad():
            tuned = model._engine.model(input_ids=ids).logits
            plain = base._engine.model(input_ids=ids).logits
        assert not torch.allclose(tuned, plain, atol=1e-4)  # the adapter is really applied (merged)
    finally:
        await model.aclose()
        await base.aclose()


def test_missing_adapter_and_adapter_of_another_base_are_refused(home, tiny_base, tmp_path):
    with pytest.raises(AdapterError, match="No adapter named 'nope'.*known: orders"):
        get_model(f"{tiny_base}+nope")
    other = tmp_path / "other-base"
    shutil.copytree(tiny_base, other)
    with pytest.raises(AdapterError, match="was trained on .* not on .*other-base"):
        get_model(f"{other}+orders")


def test_adapters_run_on_transformers_and_on_a_server_by_their_name(home, tiny_base, monkeypatch):
    monkeypatch.setenv("LLMOS_LOCAL_ENGINE", "llamacpp")  # the default engine serves plain names
    get_settings.cache_clear()
    assert isinstance(get_model(f"{tiny_base}+orders"), LocalModel)
    monkeypatch.setenv("LLMOS_BASE_URL", "http://127.0.0.1:9/v1")
    get_settings.cache_clear()
    served = get_model("qwen2.5-coder-0.5b+orders")
    assert served.name == "orders"  # vLLM serves the adapter under its --lora-modules name
    asyncio.run(served.aclose())


def test_models_lists_finished_adapters_only(home, tiny_base, trained):
    (home / "adapters" / "half-done" / "checkpoints").mkdir(parents=True)  # an unfinished run
    from llmos.llm.registry import known_models

    names = [m.name for m in known_models()]
    assert f"{tiny_base.resolve()}+orders" in names and not any("half-done" in n for n in names)
    assert [m.name for m in list_adapters()] == ["orders"]
    info = next(m for m in known_models() if m.name.endswith("+orders"))
    assert "rank 8" in info.quantization and "orders.csv" in info.description


def test_weights_hash_is_cached_and_follows_changes(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"abc")
    first = weights_sha256(folder)
    assert first == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert (folder / ".llmos-weights-sha256.json").is_file() and weights_sha256(folder) == first
    (folder / "model.safetensors").write_bytes(b"abcd")
    assert weights_sha256(folder) != first
    (folder / "model.safetensors").unlink()
    with pytest.raises(AdapterError, match="no \\*.safetensors"):
        weights_sha256(folder)


def test_eval_dialogue_scores_base_and_adapter_on_the_same_split(home, trained, tmp_path):
    from llmos.finetune.evaluation import evaluate_dialogue

    _, data, manifest = trained
    report = evaluate_dialogue("orders", data, samples=2, max_new_tokens=5)
    assert report.held_out == "validation split" and report.chats == manifest.validation_chats == 3
    assert report.loss_base == pytest.approx(manifest.loss_before, rel=1e-4)
    assert report.loss_adapter == pytest.approx(manifest.loss_after, rel=1e-4)
    assert report.perplexity_ratio == pytest.approx(report.perplexity_adapter / report.perplexity_base)
    assert len(report.samples) == 2 and report.samples[0].question.startswith("Where is order")
    other = tmp_path / "other.jsonl"
    other.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"Order {i}?"},
                                                        {"role": "assistant", "content": "Soon."}]}) for i in range(5)))
    whole = evaluate_dialogue("orders", other, samples=0)
    assert whole.held_out == "whole file" and whole.chats == 5 and whole.samples == []


def test_cli_finetune_and_eval_dialogue(home, trained, tiny_base, tmp_path):
    from llmos.cli import app

    runner = CliRunner()
    _, data, _ = trained
    result = runner.invoke(app, ["finetune", str(data), "--name", "cli", "--base", str(tiny_base), "--question-column", "q",
                                 "--answer-column", "a", "--steps", "2", "--rank", "4", "--checkpoint-every", "1"])
    assert result.exit_code == 0, result.output
    assert "validation perplexity" in result.output and f"{tiny_base.resolve()}+cli" in result.output
    assert json.loads((home / "adapters" / "cli" / "llmos-adapter.json").read_text())["settings"]["rank"] == 4
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "dialogue", str(data), "--adapter", "cli", "--out", str(out), "--samples", "1",
                                 "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["adapter"] == "cli" and saved["held_out"] == "validation split" and len(saved["samples"]) == 1
    assert "perplexity" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,reply\nhi,hello\n")
    result = runner.invoke(app, ["finetune", str(bad), "--name", "bad", "--base", str(tiny_base)])
    assert result.exit_code == 1 and "DialogueDataError" in result.output and "--question-column" in result.output
