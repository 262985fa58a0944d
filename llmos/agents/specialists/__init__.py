"""Ready-made specialists over the demo company's stores. Read one, copy it, change it.

    from llmos.demo import prepare_demo
    from llmos.agents.specialists import support_agent

    stores = prepare_demo()
    print(support_agent(stores).run_sync("What is your return window?").text)

Each module has the agent's instructions (a constant), its tools' logic as plain methods,
`*_tools(stores)` (the tools in a fixed order) and `*_agent(stores, model=None)`.
Needs the `demo` extra (SQLAlchemy, scikit-learn, matplotlib) next to `knowledge`.
"""

from llmos.agents.specialists.analysis import (
    ANALYSIS_INSTRUCTIONS,
    Alert,
    SentimentClassifier,
    SpikeReport,
    analysis_agent,
    analysis_tools,
    detect_spike,
)
from llmos.agents.specialists.recommendation import (
    RECOMMENDATION_INSTRUCTIONS,
    Recommendations,
    recommendation_agent,
    recommendation_tools,
)
from llmos.agents.specialists.support import SUPPORT_INSTRUCTIONS, support_agent, support_tools

__all__ = [
    "ANALYSIS_INSTRUCTIONS",
    "RECOMMENDATION_INSTRUCTIONS",
    "SUPPORT_INSTRUCTIONS",
    "Alert",
    "Recommendations",
    "SentimentClassifier",
    "SpikeReport",
    "analysis_agent",
    "analysis_tools",
    "detect_spike",
    "recommendation_agent",
    "recommendation_tools",
    "support_agent",
    "support_tools",
]
