"""`llmos ask` end to end on the real local model, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model


def test_ask_uses_the_calculator_and_answers_395():
    llmos = Path(sys.executable).parent / "llmos"
    done = subprocess.run(
        [str(llmos), "ask", "What is 17*23+4?"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("→ calculator(") and "17*23+4" in line.replace(" ", "") for line in lines), done.stdout
    assert any(line.startswith("← calculator: 395") for line in lines), done.stdout
    answer = [line for line in lines if line and line[0] not in "→←" and "model calls" not in line]
    assert answer and "395" in answer[-1], done.stdout
