"""The support specialist: answers from a company's documents with citations, calls the company's
own tools, keeps tickets, and hands a case to a human when the company's escalation rules say so.

    agent = support_agent(
        knowledge=KnowledgeBase("kb", tenant="acme"),          # the company's policies and FAQ
        tools=[order_status, refund_order],                     # the company's own llmos tools
        tickets=TicketDesk(TicketStore()),                      # llmos's ticket store
        escalation=EscalationPolicy(rules=[...]),               # when a human takes over: data
        company="Acme Lamps",
    )
    agent.run_sync("My lamp from order 7 arrived broken.", context=RunContext(user="u-42", tenant="acme"))

Nothing here knows a company: what it sells, its tools and its rules come from the caller
(or from an assistant file, see llmos/assistants). The demo company is one such caller
(its support module).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmos.agents.agent import Agent, Budget
from llmos.agents.specialists.escalation import EscalationPolicy
from llmos.agents.specialists.tickets import TicketDesk
from llmos.knowledge import KnowledgeBase
from llmos.llm.messages import Message
from llmos.llm.model import ChatModel, ToolChoice
from llmos.tools import Tool, as_tool

SEARCH_TOOL = "search_policies"
SEARCH_DESCRIPTION = (
    "Search the company's policies and FAQ. Returns numbered passages with their source; "
    "cite the numbers you use, like [1]."
)
DESCRIPTION = "Customer support: policies and FAQ with citations, the customer's records, tickets, escalation to a human."


def support_instructions(company: str, tool_names: Sequence[str]) -> str:
    """The generic support instructions for `company`, naming its own tools."""
    lines = [f"You are the customer support agent of {company}."]
    lines.append(f"- For questions about the company's rules and services, call {SEARCH_TOOL} and cite the passage "
                 "numbers you use, like [1].")
    if tool_names:
        lines.append(f"- To look something up or act for the customer, use {', '.join(tool_names)}. The tools know "
                     "which customer is signed in; anything of anyone else is refused.")
    lines.append("- For a problem that needs follow-up, call create_ticket.")
    lines.append("- If the customer asks for a human, or a tool result says escalation is required, call "
                 "escalate_to_human with a short summary: what happened, what they want.")
    lines.append("- Answer in two or three sentences. Say what you did (ticket number, escalation) and what happens next.")
    return "\n".join(lines)


def escalation_note(escalation: EscalationPolicy):
    """A turn note: the next step of each rule the customer's message triggers (e.g. "I want a person")."""

    def note(task: str, history: Sequence[Message]) -> str:
        return "\n".join(f"- {rule.step([])}" for rule in escalation.on_message(task))

    return note


def support_agent(
    *,
    knowledge: KnowledgeBase | Tool | None,
    tools: Sequence[Any] = (),
    tickets: TicketDesk | Sequence[Tool] | None = None,
    escalation: EscalationPolicy | None = None,
    company: str = "the company",
    instructions: str | None = None,
    model: ChatModel | str | None = None,
    name: str = "support",
    description: str = DESCRIPTION,
    budget: Budget | None = None,
    tool_choice: ToolChoice | None = None,
    max_tokens_per_call: int | None = 256,
) -> Agent[str]:
    """A support specialist.

    knowledge: the company's documents (a KnowledgeBase, searched by a `search_policies` tool),
        or a ready search tool; None: no documents.
    tools: the company's own tools (ordinary llmos tools or typed functions), guarded by `escalation`.
    tickets: a TicketDesk (its three tools), ready ticket tools, or None for no tickets.
    instructions: the whole system prompt; default: `support_instructions(company, ...)`.
    tool_choice: default: the search tool first when there are documents (answers cite them).
    """
    escalation = escalation or EscalationPolicy()
    search = knowledge.as_tool(name=SEARCH_TOOL, k=3, description=SEARCH_DESCRIPTION) if isinstance(knowledge, KnowledgeBase) else knowledge
    own = [escalation.guard(as_tool(t)) for t in tools]
    ticket_tools = tickets.tools() if isinstance(tickets, TicketDesk) else list(tickets or [])
    all_tools = [*([search] if search is not None else []), *own, *ticket_tools]
    if tool_choice is None:
        tool_choice = search.name if search is not None else "auto"
    agent = Agent(
        name,
        description=description,
        instructions=instructions or support_instructions(company, [t.name for t in own]),
        tools=all_tools,
        model=model,
        tool_choice=tool_choice,  # support answers from the policies first, so its answers cite them
        budget=budget or Budget(max_steps=4),
        max_tokens_per_call=max_tokens_per_call,  # two or three sentences, or a few calls; a runaway answer is cut short
    )
    if any(r.customer_says_any for r in escalation.rules):
        agent.turn_notes.append(escalation_note(escalation))
    return agent
