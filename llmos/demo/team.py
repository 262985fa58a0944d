"""The demo company's team: support, recommendation and analysis specialists with a planner."""

from __future__ import annotations

from llmos.agents import Team
from llmos.demo.specialists import analysis_agent, recommendation_agent
from llmos.demo.stores import COMPANY, DemoStores
from llmos.demo.support import support_agent
from llmos.llm.model import ChatModel
from llmos.llm.registry import get_model

DEMO_GOAL = (
    "I'm customer C001. My order O1090 arrived damaged: the stove is dented. What can you do about it? "
    "Also recommend a few products like the ones I bought. "
    "And how did our review sentiment look in June 2025?"
)

# A plan from this team's own domain, for another customer and other requests, so that the
# small default model learns the shape without copying the content.
PLAN_EXAMPLE = (
    'Example request: "I am customer C007. Where is my order O1200? And which tent would suit me?"\n'
    'Example plan: {"subtasks": [{"id": "s1", "specialist": "support", '
    '"instruction": "Customer C007 asks where order O1200 is.", "depends_on": [], "returns": "the order status"}, '
    '{"id": "s2", "specialist": "recommendation", "instruction": "Recommend a tent for customer C007.", '
    '"depends_on": [], "returns": "tents with reasons"}]}'
)

PLANNER_INSTRUCTIONS = f"\nYou work for {COMPANY}, an outdoor-gear shop."


def demo_team(
    stores: DemoStores,
    model: ChatModel | str | None = None,
    *,
    route: bool = False,
    subtask_timeout: float | None = 300.0,
) -> Team:
    """The team over the demo stores; one model instance serves the planner and every specialist.

    subtask_timeout: seconds per subtask attempt; None bounds subtasks by their steps and tokens only.
    """
    if not isinstance(model, ChatModel):
        model = get_model(model)
    return Team(
        [support_agent(stores, model), recommendation_agent(stores, model), analysis_agent(stores, model)],
        model=model,
        planner_instructions=PLANNER_INSTRUCTIONS,
        planner_example=PLAN_EXAMPLE,
        # The small default model routes a goal with several intents to one specialist,
        # so the demo always plans (a plan of one still skips the synthesis call).
        route=route,
        subtask_timeout=subtask_timeout,
    )
