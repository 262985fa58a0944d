"""The demo company's team: support, recommendation and analysis specialists with a planner, from its assistant file."""

from __future__ import annotations

from pathlib import Path

from llmos.agents import Team
from llmos.demo.stores import COMPANY, DemoStores
from llmos.llm.model import ChatModel

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


DEMO_FILE = Path(__file__).parent / "assistant.toml"


def demo_team(
    stores: DemoStores,
    model: ChatModel | str | None = None,
    *,
    route: bool = False,
    subtask_timeout: float | None = 300.0,
) -> Team:
    """The team of the demo's assistant file over `stores`; one model instance serves the planner and every specialist.

    subtask_timeout: seconds per subtask attempt; None bounds subtasks by their steps and tokens only.
    """
    from llmos.assistants import load_assistant
    from llmos.demo.tools import use_stores

    use_stores(stores)
    team = load_assistant(DEMO_FILE, model, embedder=stores.embedder).team
    team.route, team.subtask_timeout = route, subtask_timeout
    return team


def served(model: str | None = None) -> tuple[str, Team]:
    """What `llmos serve --team demo` serves: the demo team under the model id 'llmos-demo'."""
    from llmos.demo import prepare_demo
    from llmos.llm import get_model

    return "llmos-demo", demo_team(prepare_demo(), get_model(model))
