"""LoRA training end to end on a tiny Qwen2-shaped model: manifest, checkpoints, exact resume, refusals."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest

from llmos.config import get_settings
from llmos.errors import FinetuneError, ModelNotFoundError
from llmos.finetune import FinetuneSettings, Reporter, finetune, read_manifest
from llmos.finetune.adapters import MANIFEST, weights_sha256


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


@pytest.fixture
def orders(tmp_path):
    path = tmp_path / "orders.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question", "answer"])
        for i in range(40):
            writer.writerow([f"Where is order {i}?", f"Order {i} ships on day {i % 7}."])
    return path


def settings_for(base, **kwargs):
    values = {"base": str(base), "steps": 6, "batch_size": 2, "grad_accumulation": 2, "lr": 1e-2, "warmup_steps": 1}
    return FinetuneSettings(**{**values, **kwargs})


class Recorder(Reporter):
    """Keeps what the run reported; raises KeyboardInterrupt (a Ctrl-C) after step `stop_after`."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after, self.starts, self.steps, self.checkpoints = stop_after, [], [], []

    def start(self, first_step, steps):
        self.starts.append(first_step)

    def step(self, step, steps, loss, tokens_per_s):
        self.steps.append((step, loss))
        if step == self.stop_after:
            raise KeyboardInterrupt

    def checkpoint(self, step, path):
        self.checkpoints.append(step)


def adapter_weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def test_a_run_saves_the_adapter_with_its_manifest(home, tiny_base, orders):
    recorder = Recorder()
    manifest = finetune(orders, "orders", settings_for(tiny_base), checkpoint_every=2, reporter=recorder)
    folder = home / "adapters" / "orders"
    assert (folder / "adapter_config.json").is_file() and (folder / "adapter_model.safetensors").is_file()
    assert read_manifest(folder) == manifest
    assert manifest.base == str(tiny_base.resolve()) and manifest.base_sha256 == weights_sha256(tiny_base)
    assert manifest.data_sha256 == hashlib.sha256(orders.read_bytes()).hexdigest()
    assert (manifest.train_chats, manifest.validation_chats, manifest.steps) == (36, 4, 6)
    assert manifest.loss_after < manifest.loss_before  # it learned the pattern of the answers
    assert manifest.perplexity_before == pytest.approx(2.718281828 ** manifest.loss_before)
    assert manifest.train_tokens > 0 and manifest.tokens_per_s > 0 and manifest.total_minutes >= manifest.train_minutes
    assert [s for s, _ in recorder.steps] == [1, 2, 3, 4, 5, 6] and recorder.checkpoints == [2, 4]
    assert not (folder / "checkpoints").exists()  # removed once the adapter is saved
    with pytest.raises(FinetuneError, match="already exists.*--overwrite"):
        finetune(orders, "orders", settings_for(tiny_base))


def test_a_killed_run_resumes_where_it_stopped_and_ends_as_an_uninterrupted_one(home, tiny_base, orders, tmp_path):
    settings = settings_for(tiny_base, dropout=0.2)  # dropout draws random masks: the RNG state must be restored
    whole = finetune(orders, "whole", settings, checkpoint_every=2)

    killed = Recorder(stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        finetune(orders, "resumed", settings, checkpoint_every=2, reporter=killed)
    folder = home / "adapters" / "resumed"
    assert not (folder / MANIFEST).exists()
    assert json.loads((folder / "checkpoints" / "step-000002" / "checkpoint.json").read_text())["step"] == 2

    with pytest.raises(FinetuneError, match="unfinished run.*--restart"):
        finetune(orders, "resumed", settings_for(tiny_base, dropout=0.2, lr=5e-3), checkpoint_every=2)

    again = Recorder()
    resumed = finetune(orders, "resumed", settings, checkpoint_every=2, reporter=again)
    assert again.starts == [2] and [s for s, _ in again.steps] == [3, 4, 5, 6]
    assert resumed.resumed == 1 and resumed.loss_before == pytest.approx(whole.loss_before)
    assert resumed.loss_after == pytest.approx(whole.loss_after, rel=1e-5)
    a, b = adapter_weights(home / "adapters" / "whole"), adapter_weights(folder)
    import torch

    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_restart_discards_an_unfinished_run(home, tiny_base, orders):
    with pytest.raises(KeyboardInterrupt):
        finetune(orders, "r", settings_for(tiny_base), checkpoint_every=2, reporter=Recorder(stop_after=2))
    recorder = Recorder()
    finetune(orders, "r", settings_for(tiny_base, lr=5e-3), checkpoint_every=2, restart=True, reporter=recorder)
    assert recorder.starts == [0]


def test_unknown_base_bad_name_and_nothing_to_learn(home, tiny_base, orders, tmp_path):
    with pytest.raises(ModelNotFoundError, match="Unknown base model 'no-such-model'"):
        finetune(orders, "x", FinetuneSettings(base="no-such-model"))
    with pytest.raises(Exception, match="cannot name an adapter"):
        finetune(orders, "a/b", settings_for(tiny_base))
    with pytest.raises(FinetuneError, match="--max-length"):
        finetune(orders, "x", settings_for(tiny_base, max_length=20))  # the system prompt alone is longer
