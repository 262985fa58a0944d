"""The vLLM launcher without a vLLM server: commands, environment, errors, process handling."""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmos.cli import app
from llmos.errors import ConfigError, ModelConnectionError, WeightsError
from llmos.llm import vllm_server
from llmos.llm.profiles import DEFAULT_PROFILE, profile_for
from llmos.llm.vllm_server import VLLMServerConfig, build_command, build_env, start_server, wait_until_ready


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "Qwen2.5-Coder-0.5B-Instruct"
    folder.mkdir()
    return folder


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fake_python(tmp_path: Path, body: str) -> Path:
    """A stand-in for the venv's python: a shell script that ignores its arguments."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# --- commands -------------------------------------------------------------------


def test_cpu_command_runs_the_api_server_module_with_the_cpu_flags(model_dir, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    config = VLLMServerConfig(model=str(model_dir), gpu=False, vllm_python=Path("/x/.venv-vllm/bin/python"))
    argv = build_command(config)
    assert argv[:3] == ["/x/.venv-vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert flag(argv, "--model") == str(model_dir.resolve())
    assert flag(argv, "--served-model-name") == "Qwen2.5-Coder-0.5B-Instruct"
    assert (flag(argv, "--host"), flag(argv, "--port")) == ("127.0.0.1", "8011")
    assert flag(argv, "--dtype") == "bfloat16" and flag(argv, "--max-model-len") == "4096"
    assert flag(argv, "--tool-call-parser") == "hermes"
    for switch in ("--enforce-eager", "--enable-auto-tool-choice", "--enable-prefix-caching"):
        assert switch in argv
    assert build_env(config) == {
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "0-3",
    }


def test_gpu_command_is_vllm_serve_with_the_same_api_flags_and_no_cpu_env(model_dir):
    config = VLLMServerConfig(model=str(model_dir), served_name="coder", port=9000, gpu=True)
    argv = build_command(config)
    assert argv[:3] == ["vllm", "serve", str(model_dir.resolve())]
    assert flag(argv, "--served-model-name") == "coder" and flag(argv, "--port") == "9000"
    assert flag(argv, "--tool-call-parser") == "hermes" and "--enable-auto-tool-choice" in argv
    assert "--enforce-eager" not in argv  # CUDA graphs pay off on a GPU
    assert flag(argv, "--dtype") == "auto"
    assert not any(key.startswith("VLLM_CPU") for key in build_env(config))


def test_explicit_settings_win_over_the_defaults(model_dir):
    config = VLLMServerConfig(
        model=str(model_dir), gpu=False, enforce_eager=False, prefix_caching=False,
        tool_call_parser="llama3_json", kv_cache_gib=4, threads_bind="0", extra_args=["--seed", "1"],
    )  # fmt: skip
    argv = build_command(config)
    assert "--enforce-eager" not in argv and "--enable-prefix-caching" not in argv
    assert flag(argv, "--tool-call-parser") == "llama3_json" and argv[-2:] == ["--seed", "1"]
    assert build_env(config)["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert build_env(config)["VLLM_CPU_OMP_THREADS_BIND"] == "0"


def test_a_catalog_name_resolves_to_its_prepared_folder(tmp_path, monkeypatch):
    from llmos.llm.local import catalog

    monkeypatch.setattr(catalog, "is_prepared", lambda name: True)
    monkeypatch.setattr(catalog, "model_dir", lambda name: tmp_path / name)
    argv = build_command(VLLMServerConfig(model="qwen2.5-coder-0.5b", gpu=False))
    assert flag(argv, "--model") == str(tmp_path / "qwen2.5-coder-0.5b")
    assert flag(argv, "--served-model-name") == "qwen2.5-coder-0.5b"


def test_an_unprepared_catalog_model_says_how_to_prepare_it(monkeypatch):
    from llmos.llm.local import catalog

    monkeypatch.setattr(catalog, "is_prepared", lambda name: False)
    with pytest.raises(WeightsError, match="llmos models prepare qwen2.5-coder-1.5b"):
        build_command(VLLMServerConfig(model="qwen2.5-coder-1.5b", gpu=False))


# --- profiles -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "family", "native"),
    [
        ("qwen2.5-coder-0.5b", "qwen2.5-coder", False),
        ("Qwen/Qwen2.5-Coder-1.5B-Instruct", "qwen2.5-coder", False),
        ("/models/Qwen2.5-7B-Instruct", "qwen2.5", True),
        ("some-llama", "generic", False),
    ],
)
def test_profile_for_matches_the_family(name, family, native):
    profile = profile_for(name)
    assert profile.family == family and profile.auto_tool_calls_native is native
    assert profile.tool_call_parser == "hermes"


def test_unknown_models_get_the_cautious_default():
    assert profile_for("mystery-7b") is DEFAULT_PROFILE
    assert not DEFAULT_PROFILE.auto_tool_calls_native and not DEFAULT_PROFILE.parallel_tool_calls


# --- the CLI --------------------------------------------------------------------


def test_serve_model_dry_run_prints_the_command_and_env(model_dir, monkeypatch):
    monkeypatch.setattr(vllm_server, "has_gpu", lambda: False)
    result = CliRunner().invoke(app, ["serve-model", str(model_dir), "--port", "8123", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "HF_HUB_OFFLINE=1" in result.output and "VLLM_CPU_KVCACHE_SPACE=1" in result.output
    assert "-m vllm.entrypoints.openai.api_server" in result.output
    assert "--port 8123" in result.output and "--tool-call-parser hermes" in result.output


def test_serve_model_with_an_unknown_model_is_a_clear_error():
    result = CliRunner().invoke(app, ["serve-model", "no-such-model", "--dry-run"])
    assert result.exit_code == 1
    assert "Unknown model 'no-such-model'" in result.output and "Traceback" not in result.output


# --- starting and stopping ------------------------------------------------------------


def test_start_without_the_vllm_venv_says_how_to_set_it_up(model_dir, tmp_path):
    config = VLLMServerConfig(model=str(model_dir), gpu=False, vllm_python=tmp_path / "missing" / "python")
    with pytest.raises(ConfigError, match=r"scripts/setup-vllm\.sh.*make vllm"):
        start_server(config, log_path=tmp_path / "vllm.log")


def test_start_refuses_a_port_in_use(model_dir, tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        config = VLLMServerConfig(model=str(model_dir), gpu=False, port=port, vllm_python=fake_python(tmp_path, ""))
        with pytest.raises(ConfigError, match="already in use"):
            start_server(config, log_path=tmp_path / "vllm.log")


def test_a_server_that_dies_fails_fast_with_its_log(model_dir, tmp_path, free_port):
    python = fake_python(tmp_path, "echo 'CUDA is on fire' >&2; exit 3")
    config = VLLMServerConfig(model=str(model_dir), gpu=False, port=free_port, vllm_python=python)
    handle = start_server(config, log_path=tmp_path / "vllm.log")
    try:
        with pytest.raises(ModelConnectionError, match="(?s)exited with code 3.*CUDA is on fire"):
            wait_until_ready(handle.base_url, 30, handle=handle)
    finally:
        handle.stop()


def test_stop_ends_the_whole_process_group_and_removes_the_pid_file(model_dir, tmp_path, free_port):
    # The fake server starts a child, as vLLM starts its engine process; both must go.
    python = fake_python(tmp_path, f"sleep 300 & echo $! > {tmp_path}/child.pid; wait")
    config = VLLMServerConfig(model=str(model_dir), gpu=False, port=free_port, vllm_python=python)
    handle = start_server(config, log_path=tmp_path / "vllm.log")
    assert handle.pid_path.read_text().strip() == str(handle.pid)
    child_pid_file = tmp_path / "child.pid"
    for _ in range(50):
        if child_pid_file.exists() and child_pid_file.read_text().strip():
            break
        time.sleep(0.1)
    child = int(child_pid_file.read_text())
    handle.stop(grace=5)
    assert not handle.alive() and not handle.pid_path.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    handle.stop()  # twice is fine
