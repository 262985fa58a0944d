"""`llmos serve-model --adapter`: vLLM's LoRA arguments, checked adapters, the dry run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmos.config import get_settings
from llmos.errors import AdapterError, ConfigError
from llmos.finetune.adapters import MANIFEST, AdapterManifest
from llmos.finetune.settings import FinetuneSettings
from llmos.llm.vllm_server import VLLMServerConfig, build_command, parse_adapters


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "Qwen2.5-Coder-0.5B-Instruct"
    folder.mkdir()
    return folder


def make_adapter(folder: Path, *, rank: int, base: str | None) -> Path:
    """A PEFT adapter folder as `llmos finetune` leaves it (a manifest when `base` is given)."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    if base is not None:
        manifest = AdapterManifest(
            name=folder.name, base=base, base_sha256="0" * 64, data="d.csv", data_sha256="1" * 64,
            settings=FinetuneSettings(base=base, rank=rank), train_chats=1, validation_chats=0, steps=1,
            train_minutes=0.1, total_minutes=0.2, train_tokens=10, tokens_per_s=1.0,
        )
        (folder / MANIFEST).write_text(manifest.model_dump_json())
    return folder


def config(model_dir: Path, **kwargs) -> VLLMServerConfig:
    return VLLMServerConfig(model=str(model_dir), gpu=False, vllm_python=Path("/x/python"), **kwargs)


def test_adapters_enable_lora_with_their_names_and_the_rank_vllm_takes(model_dir, tmp_path):
    support = make_adapter(tmp_path / "support", rank=12, base=str(model_dir.resolve()))
    plain = make_adapter(tmp_path / "plain", rank=4, base=None)  # a PEFT adapter from elsewhere: no manifest
    argv = build_command(config(model_dir, adapters={"support": support, "other": plain}))
    assert "--enable-lora" in argv
    start = argv.index("--lora-modules") + 1
    assert argv[start:start + 2] == [f"support={support}", f"other={plain}"]
    assert argv[argv.index("--max-lora-rank") + 1] == "16"  # 12, rounded up to a rank vLLM accepts
    assert argv[argv.index("--max-loras") + 1] == "2"
    forced = build_command(config(model_dir, adapters={"support": support}, max_lora_rank=64))
    assert forced[forced.index("--max-lora-rank") + 1] == "64"
    assert "--enable-lora" not in build_command(config(model_dir))


def test_an_adapter_of_another_base_or_without_its_config_is_refused(model_dir, tmp_path):
    elsewhere = make_adapter(tmp_path / "elsewhere", rank=8, base="qwen2.5-coder-1.5b")
    with pytest.raises(AdapterError, match="trained on 'qwen2.5-coder-1.5b'"):
        build_command(config(model_dir, adapters={"elsewhere": elsewhere}))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AdapterError, match="no readable adapter_config.json"):
        build_command(config(model_dir, adapters={"empty": empty}))


def test_adapter_options_name_a_folder_or_a_saved_adapter(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    try:
        saved = make_adapter(tmp_path / "home" / "adapters" / "support", rank=8, base="qwen2.5-coder-0.5b")
        folder = make_adapter(tmp_path / "x", rank=8, base=None)
        assert parse_adapters(["support", f"mine={folder}"]) == {"support": saved.resolve(), "mine": folder.resolve()}
        with pytest.raises(ConfigError, match="given twice"):
            parse_adapters(["support", f"support={folder}"])
        with pytest.raises(ConfigError, match="cannot name an adapter"):
            parse_adapters([f"a b={folder}"])
        with pytest.raises(AdapterError, match="No adapter named 'missing'"):
            parse_adapters(["missing"])
    finally:
        get_settings.cache_clear()


def test_serve_model_dry_run_shows_the_lora_arguments(model_dir, tmp_path):
    from llmos.cli import app

    adapter = make_adapter(tmp_path / "support", rank=16, base=str(model_dir.resolve()))
    result = CliRunner().invoke(app, ["serve-model", str(model_dir), "--dry-run", "--adapter", f"support={adapter}"])
    assert result.exit_code == 0, result.output
    assert f"--enable-lora --lora-modules support={adapter} --max-lora-rank 16 --max-loras 1" in result.output
    result = CliRunner().invoke(app, ["serve-model", str(model_dir), "--dry-run", "--adapter", "nope=/no/such/folder"])
    assert result.exit_code == 1 and "AdapterError" in result.output
