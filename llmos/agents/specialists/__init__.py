"""Ready-made specialists that a company configures: support, recommendation, analysis.

    from llmos.agents.specialists import support_agent, TicketDesk, TicketStore, EscalationPolicy

    support = support_agent(knowledge=kb, tools=[order_status], tickets=TicketDesk(TicketStore()),
                            escalation=EscalationPolicy(rules=[...]), company="Acme Lamps")

Nothing here knows a company: its documents, tools, catalog, texts, rules and words are given
by the caller, or by an assistant file (llmos/assistants). The demo company is one
such configuration. Needs the `demo` extra (SQLAlchemy, scikit-learn, matplotlib) next to `knowledge`.
"""

from llmos.agents.specialists.analysis import (
    Alert,
    SentimentClassifier,
    SpikeReport,
    SpikeSettings,
    TextAnalyst,
    TimedText,
    analysis_agent,
    analysis_tools,
    detect_spike,
    load_texts,
    texts_from_sql,
)
from llmos.agents.specialists.catalog import CatalogItem, ItemCatalog, load_items
from llmos.agents.specialists.escalation import Condition, EscalationPolicy, EscalationRule
from llmos.agents.specialists.recommendation import (
    Recommendations,
    Recommender,
    SQLHistory,
    recommendation_agent,
    recommendation_tools,
)
from llmos.agents.specialists.support import support_agent, support_instructions
from llmos.agents.specialists.tickets import Ticket, TicketDesk, TicketStore

__all__ = [
    "Alert",
    "CatalogItem",
    "Condition",
    "EscalationPolicy",
    "EscalationRule",
    "ItemCatalog",
    "Recommendations",
    "Recommender",
    "SQLHistory",
    "SentimentClassifier",
    "SpikeReport",
    "SpikeSettings",
    "TextAnalyst",
    "Ticket",
    "TicketDesk",
    "TicketStore",
    "TimedText",
    "analysis_agent",
    "analysis_tools",
    "detect_spike",
    "load_items",
    "load_texts",
    "recommendation_agent",
    "recommendation_tools",
    "support_agent",
    "support_instructions",
    "texts_from_sql",
]
