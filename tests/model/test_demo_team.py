"""The demo team on the real local model: the demo goal's plan names the right specialists."""

from __future__ import annotations

import pytest

from llmos.agents.planner import Planner
from llmos.demo import prepare_demo
from llmos.demo.team import DEMO_GOAL, PLAN_EXAMPLE, PLANNER_INSTRUCTIONS, demo_team
from llmos.tools import RunContext

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return prepare_demo(tmp_path_factory.mktemp("demo-home"))


async def test_the_demo_goal_is_planned_for_support_recommendation_and_analysis(stores, local_model):
    team = demo_team(stores, local_model)
    planner = Planner(
        {a.name: a.description for a in team.specialists},
        local_model,
        instructions=PLANNER_INSTRUCTIONS,
        example=PLAN_EXAMPLE,
    )
    plan = await planner.plan(DEMO_GOAL)
    assert {s.specialist for s in plan.subtasks} == {"support", "recommendation", "analysis"}
    assert all(not s.depends_on for s in plan.subtasks)  # independent: they run side by side


async def test_the_demo_goal_gets_an_answer_that_cites_a_policy_document(stores, local_model):
    from llmos.demo import DATA_DIR

    # Bounded by the specialists' steps and tokens, not by seconds: a slow or busy CPU
    # takes longer but does the same work.
    # The customer is signed in by the caller, as `llmos demo` does: the tools never take it from the model.
    context = RunContext(user="C001")
    result = await demo_team(stores, local_model, subtask_timeout=None).run(DEMO_GOAL, context=context)
    assert result.route == "plan"
    support = [r for r in result.subtasks if r.specialist == "support"]
    assert support and support[0].ok, support
    policy_files = {p.name for p in (DATA_DIR / "policies").glob("*.md")}
    cited = [s for s in result.sources if s.citation.split(",")[0] in policy_files]
    assert cited, result.sources
    # The numbered source list is written by code after the answer, from what the tools returned.
    body, _, listed = result.text.partition("\nSources:\n")
    assert f"[{cited[0].number}] {cited[0].citation}" in listed
