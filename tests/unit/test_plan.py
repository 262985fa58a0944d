"""Plans: the schema the model is constrained to, validation, and the planner's repair loop."""

from __future__ import annotations

import json

import jsonschema
import pytest

from llmos.agents import Plan, Planner, Subtask, plan_schema, validate_plan
from llmos.agents import prompts
from llmos.agents.citations import Citations, passages, split_sources
from llmos.agents.plan import find_cycle
from llmos.errors import PlanError
from tests.scripted import ScriptedModel

TEAM = {"support": "Orders and returns.", "recommendation": "Suggests products."}


def plan(*subtasks: tuple[str, str, list[str]]) -> Plan:
    return Plan(subtasks=[Subtask(id=i, specialist=s, instruction=f"do {i}", depends_on=d) for i, s, d in subtasks])


def plan_text(*subtasks: tuple[str, str, list[str]]) -> str:
    return json.dumps(plan(*subtasks).model_dump())


def test_a_good_plan_has_no_problems():
    good = plan(("s1", "support", []), ("s2", "recommendation", []), ("s3", "support", ["s1", "s2"]))
    assert validate_plan(good, TEAM) == []


def test_schema_allows_only_the_teams_specialists():
    schema = plan_schema(list(TEAM)).json_schema
    ok = json.loads(plan_text(("s1", "support", [])))
    jsonschema.validate(ok, schema)
    bad = json.loads(plan_text(("s1", "billing", [])))
    with pytest.raises(jsonschema.ValidationError, match="billing"):
        jsonschema.validate(bad, schema)
    too_many = json.loads(plan_text(*[(f"s{i}", "support", []) for i in range(7)]))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(too_many, schema)
    assert "$ref" not in json.dumps(schema)  # flat: constrained decoders and small models read it as is


def test_unknown_specialist():
    problems = validate_plan(plan(("s1", "billing", [])), TEAM)
    assert len(problems) == 1 and "'billing'" in problems[0] and "support, recommendation" in problems[0]


def test_duplicate_ids():
    problems = validate_plan(plan(("s1", "support", []), ("s1", "recommendation", [])), TEAM)
    assert problems == ["The id 's1' is used by 2 subtasks: give each subtask its own id."]


def test_unknown_dependency():
    problems = validate_plan(plan(("s1", "support", ["s9"])), TEAM)
    assert problems == ["Subtask 's1' depends on 's9', which is not a subtask id."]


def test_cycle_is_reported_with_its_path():
    cyclic = plan(("s1", "support", ["s3"]), ("s2", "support", ["s1"]), ("s3", "recommendation", ["s2"]))
    problems = validate_plan(cyclic, TEAM)
    assert len(problems) == 1 and "cycle" in problems[0]
    cycle = find_cycle(cyclic)
    assert cycle[0] == cycle[-1] and set(cycle) == {"s1", "s2", "s3"}
    assert find_cycle(plan(("s1", "support", ["s1"]))) == ["s1", "s1"]
    assert find_cycle(plan(("s1", "support", []), ("s2", "support", ["s1"]))) is None


def test_empty_and_too_long_plans():
    assert validate_plan(Plan(subtasks=[]), TEAM) == ["The plan has no subtasks: add at least one."]
    long = plan(*[(f"s{i}", "support", []) for i in range(4)])
    assert validate_plan(long, TEAM, max_subtasks=3) == ["The plan has 4 subtasks: use at most 3."]


def test_a_replan_may_depend_on_finished_ids_but_not_reuse_them():
    assert validate_plan(plan(("r1", "support", ["s1"])), TEAM, done=["s1"]) == []
    problems = validate_plan(plan(("s1", "support", [])), TEAM, done=["s1"])
    assert problems == ["The id 's1' belongs to a finished subtask: use a new id."]


async def test_planner_repairs_an_invalid_plan_with_the_problems_fed_back():
    cyclic = plan_text(("s1", "support", ["s2"]), ("s2", "recommendation", ["s1"]))
    fixed = plan_text(("s1", "support", []), ("s2", "recommendation", ["s1"]))
    model = ScriptedModel([cyclic, fixed])
    result = await Planner(TEAM, model).plan("goal")
    assert [s.depends_on for s in result.subtasks] == [[], ["s1"]]
    repair = model.requests[1].messages
    assert repair[-2].role == "assistant" and repair[-2].content == cyclic
    assert repair[-1].content.startswith("This plan cannot run:") and "cycle" in repair[-1].content
    assert all(r.output_schema is not None for r in model.requests)


async def test_repairs_are_bounded_then_a_clear_plan_error():
    cyclic = plan_text(("s1", "support", ["s1"]))
    model = ScriptedModel([cyclic] * 5)
    with pytest.raises(PlanError, match="3 tries.*cycle"):
        await Planner(TEAM, model, max_repairs=2).plan("goal")
    assert len(model.requests) == 3


async def test_an_answer_that_is_not_a_plan_is_repaired_too():
    model = ScriptedModel(['{"steps": []}', plan_text(("s1", "support", []))])
    result = await Planner(TEAM, model).plan("goal")
    assert result.subtasks[0].specialist == "support" and len(model.requests) == 2


async def test_planner_prompt_is_byte_stable_and_lists_specialists_in_order():
    a, b = ScriptedModel([plan_text(("s1", "support", []))]), ScriptedModel([plan_text(("s1", "support", []))])
    await Planner(TEAM, a).plan("first goal")
    await Planner(dict(TEAM), b).plan("another goal")
    system = a.requests[0].messages[0].content
    assert system == b.requests[0].messages[0].content
    assert system.index("- support: Orders and returns.") < system.index("- recommendation: Suggests products.")
    assert a.requests[0].output_schema == b.requests[0].output_schema
    assert "Example plan:" in a.requests[0].messages[-1].content


async def test_route_falls_back_to_plan_when_the_answer_is_not_a_route():
    planner = Planner(TEAM, ScriptedModel(['{"route": "billing"}']))
    assert await planner.route("hi") == "plan"
    model = ScriptedModel(['{"route": "support"}'])
    assert await Planner(TEAM, model).route("where is my order?") == "support"
    assert model.requests[0].max_tokens is not None and model.requests[0].max_tokens <= 32


def test_citations_are_renumbered_across_subtasks():
    tool_output = "[1] policies/returns.md, Damaged items\nSend a photo.\n\n[2] faq.md\nText.\n\nCite [1]."
    assert passages(tool_output) == {1: "policies/returns.md, Damaged items", 2: "faq.md"}
    assert split_sources("Body [1].\n\nSources:\n[1] a.md") == ("Body [1].", {1: "a.md"})
    citations = Citations()
    assert citations.add("s1", "Send a photo [1].", {1: "policies/returns.md, Damaged items"}) == ("Send a photo [1].", [1])
    # Another subtask's [1] is another document, and its invented [7] points nowhere.
    assert citations.add("s2", "Lamps are bright [1] [7].", {1: "catalog/lamps.md"}) == ("Lamps are bright [2].", [2])
    # Citing nothing keeps what it retrieved; a document cited twice keeps one number.
    assert citations.add("s3", "No markers.", {1: "faq.md", 2: "catalog/lamps.md"}) == ("No markers.", [2, 3])
    assert citations.render() == "[1] policies/returns.md, Damaged items\n[2] catalog/lamps.md\n[3] faq.md"
    assert citations.clean("A [1], B [4].") == "A [1], B."


def test_prompts_are_plain_data():
    # Formatting with the fields they name works, and the planner's example is valid JSON for the schema.
    example = prompts.PLAN_EXAMPLE
    data = json.loads(example[example.index("{"):])
    jsonschema.validate(data, plan_schema(["flights", "hotels"]).json_schema)
    assert prompts.PLAN.format(goal="G", example="E").endswith("E\n\nRequest: G")  # the request comes last


def test_blank_dependencies_are_no_dependencies():
    assert Subtask(id="s1", specialist="a", instruction="x", depends_on=["", " s2 "]).depends_on == ["s2"]
    with pytest.raises(jsonschema.ValidationError):
        blank = {"id": "s1", "specialist": "support", "instruction": "x", "depends_on": [""], "returns": ""}
        jsonschema.validate({"subtasks": [blank]}, plan_schema(list(TEAM)).json_schema)
