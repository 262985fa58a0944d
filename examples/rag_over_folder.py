"""Ask a question about your own documents and get an answer with citations.

    python examples/rag_over_folder.py ./my-docs "What is our refund policy?"

The folder is ingested into a knowledge base under LLMOS_HOME/knowledge (tenant "examples");
running again only re-embeds files that changed.
"""

import sys

from llmos.agents import Agent
from llmos.knowledge import KnowledgeBase

if len(sys.argv) < 3:
    sys.exit(__doc__)
folder, question = sys.argv[1], " ".join(sys.argv[2:])

kb = KnowledgeBase(tenant="examples")
summary = kb.ingest(folder)
print(f"ingested {folder}: +{len(summary.added)} ~{len(summary.updated)} files, {kb.stats().chunks} chunks")

agent = Agent(
    "docs",
    instructions="Answer from the documents only. First call search_knowledge with the question. "
    "Cite the passages you use by their numbers, like [1]. If they do not answer it, say so.",
    tools=[kb.as_tool(k=4)],
)
result = agent.run_sync(question)
print(result.text)
