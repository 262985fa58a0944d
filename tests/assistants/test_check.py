"""`llmos check`: one clear error per mistake in an assistant file, with the field and what to write."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from llmos.assistants import check_file, load_assistant
from llmos.cli import app
from llmos.errors import ConfigError
from tests.assistants.conftest import FJORD

BROKEN = """
name = "Broken"
[knowledge.docs]
folder = "no-such-folder"
[[specialists]]
name = "helper"
kind = "suport"
[[specialists]]
name = "cards"
kind = "support"
tools = ["nowhere_tools:card_status", "fjord_tools:no_such_tool"]
knowledge = "docs"
max_steps = "five"
"""


@pytest.fixture
def broken(tmp_path):
    shutil.copy(FJORD.parent / "fjord_tools.py", tmp_path / "fjord_tools.py")
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    return path


def test_every_mistake_is_reported_once_with_its_field(broken):
    spec, problems = check_file(broken)
    assert spec is None and len(problems) == 5, problems
    assert all(p.startswith(f"{broken}: ") for p in problems)
    expected = [
        ("specialists[0] (helper).kind", "write one of support, recommendation, analysis, custom"),
        ("specialists[1] (cards).max_steps", "write a whole number without quotes"),
        ("knowledge.docs.folder", "no folder"),
        ("specialists[1] (cards).tools[0]", "cannot import module 'nowhere_tools'"),
        ("specialists[1] (cards).tools[1]", "has no 'no_such_tool'; it has: "),
    ]
    for (field, words), problem in zip(expected, problems):
        assert f": {field}: " in problem and words in problem, problem


def test_check_command_prints_the_mistakes_and_fails(broken):
    result = CliRunner().invoke(app, ["check", str(broken)])
    assert result.exit_code == 1 and "5 problem(s)" in result.output and "nowhere_tools" in result.output
    ok = CliRunner().invoke(app, ["check", str(FJORD)])
    assert ok.exit_code == 0 and "cards (support), advisor (custom)" in ok.output


def test_a_file_with_mistakes_does_not_load(broken):
    with pytest.raises(ConfigError, match="5 problem"):
        load_assistant(broken, "unused")


@pytest.mark.parametrize(("toml", "field"), [
    ('name = "x"\nspecialists = []', "specialists"),
    ('name = "x"\n[[specialists]]\nname = "a"\nkind = "custom"\n[[escalation]]\nname = "r"', "escalation[0]"),
    ('name = "x"\n[[specialists]]\nname = "a"\nkind = "custom"\nknowledge = "nope"', "specialists[0] (a).knowledge"),
    ('name = "x"\n[[specialists]]\nname = "a"\nkind = "custom"\ncolour = "red"', "specialists[0] (a).colour"),
])
def test_single_mistakes(tmp_path, toml, field):
    path = tmp_path / "a.toml"
    path.write_text(toml)
    _, problems = check_file(path)
    assert len(problems) == 1 and f": {field}" in problems[0], problems


def test_the_server_serves_an_assistant_file_by_its_name(monkeypatch, tmp_path):
    from llmos.agents import Team
    from llmos.config import get_settings
    from llmos.errors import ConfigError
    from llmos.server.launch import load_servable
    from tests.assistants.conftest import FJORD

    monkeypatch.setenv("LLMOS_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        name, team = load_servable(str(FJORD), "qwen2.5-coder-0.5b")  # the model loads on first use only
        assert isinstance(team, Team) and name == check_file(FJORD)[0].slug
        with pytest.raises(ConfigError, match="assistant file"):
            load_servable("nope")
        with pytest.raises(ConfigError, match="import path"):
            load_servable("no_such_module:team")
    finally:
        get_settings.cache_clear()
