"""A custom agent with its own typed tool.

    python examples/custom_agent.py "How much does my pack weigh with a 1200 g tent, 900 g bag and 400 g stove?"
"""

import sys

from pydantic import BaseModel

from llmos.agents import Agent
from llmos.tools import tool


class PackWeight(BaseModel):
    total_g: int
    total_kg: float
    verdict: str


@tool
def pack_weight(items_g: list[int]) -> PackWeight:
    """Add up the weights of the items in a backpack.

    Args:
        items_g: The weight of each item, in grams.
    """
    total = sum(items_g)
    verdict = "ultralight" if total < 4500 else "lightweight" if total < 9000 else "traditional"
    return PackWeight(total_g=total, total_kg=round(total / 1000, 2), verdict=verdict)


agent = Agent(
    "packer",
    instructions="You help hikers pack. For any weight question, call pack_weight with every item's grams, "
    "then answer in one sentence with the total in kg and the verdict.",
    tools=[pack_weight],
)

if __name__ == "__main__":
    question = " ".join(sys.argv[1:]) or "My tent is 1200 g, my sleeping bag 900 g and my stove 400 g. How heavy is that?"
    print(agent.run_sync(question).text)
