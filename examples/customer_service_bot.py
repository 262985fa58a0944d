"""The support specialist over the demo company (Alder & Ridge Outfitters), answering one question.

    python examples/customer_service_bot.py "My stove from order O1090 arrived damaged, what now?"

The customer is signed in by the program (here C001, as a login would), never named by the model:
the tools look up only that customer's orders and tickets. The first run builds the demo stores under LLMOS_HOME/demo (about a minute); later runs reuse them.
"""

import sys

from llmos.agents import ErrorEvent, FinalEvent, ToolCallEvent, ToolResultEvent
from llmos.demo import prepare_demo
from llmos.demo.support import support_agent
from llmos.tools import RunContext


async def main(question: str) -> None:
    agent = support_agent(prepare_demo())
    async for event in agent.stream(question, context=RunContext(user="C001")):
        if isinstance(event, ToolCallEvent):
            print(f"-> {event.call.name}({event.call.arguments})")
        elif isinstance(event, ToolResultEvent):
            print(f"<- {event.content[:200]}")
        elif isinstance(event, FinalEvent):
            print("\n" + event.result.text)
        elif isinstance(event, ErrorEvent):
            print(f"error: {event.message}")


if __name__ == "__main__":
    import asyncio

    asyncio.run(main(" ".join(sys.argv[1:]) or "How many days do I have to return unused boots?"))
