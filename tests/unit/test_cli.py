"""The `llmos` command: clear errors and exit codes, never a traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from llmos.cli import app

runner = CliRunner()


def test_models_lists_the_catalog():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "qwen2.5-coder-0.5b" in result.output and "qwen2.5-coder-1.5b" in result.output


def test_prepare_an_unknown_model_is_a_clear_error():
    result = runner.invoke(app, ["models", "prepare", "gpt-17"])
    assert result.exit_code == 1
    assert "ModelNotFoundError" in result.output and "qwen2.5-coder-0.5b" in result.output
    assert "Traceback" not in result.output


def test_ask_with_an_unknown_model_is_a_clear_error():
    result = runner.invoke(app, ["ask", "hello", "--model", "no-such-model"])
    assert result.exit_code == 1
    assert "Unknown model 'no-such-model'" in result.output and "Traceback" not in result.output
