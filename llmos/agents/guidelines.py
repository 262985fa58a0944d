"""Guidelines: "when <condition>, then <action>" rules, matched per turn, added to the instructions only when they match.

    matcher = GuidelineMatcher([Guideline(when="I am going abroad on holiday",
                                          then="tell them to turn on travel mode in the app")], embedder)
    agent.turn_notes.append(matcher)      # the agent's prompt gains the action on matching turns only

Write the condition in the customer's words. A guideline matches when the customer's message is close to it: the cosine
similarity of their sentence embeddings (the knowledge module's embedder) is at least
`threshold`. Conditions are embedded once. The usual prompt stays short and its prefix
stable; a turn that matches gets one line per matching guideline after the instructions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from llmos.llm.messages import Message

# MiniLM cosine, measured on the Fjord Bank test assistant: a condition written in the customer's words
# ("I am going abroad on holiday...") scores 0.57 against a matching message and 0.06-0.19 against
# unrelated ones; written about the customer ("the customer is travelling...") it scores only ~0.3.
DEFAULT_THRESHOLD = 0.4
HEADER = "Guidelines for this request:"


class Guideline(BaseModel):
    """When the condition matches the customer's message, the action joins the instructions of that turn."""

    model_config = ConfigDict(extra="forbid")

    when: str = Field(description="A situation in the customer's words, e.g. 'I am going abroad on holiday'.")
    then: str = Field(description="What to do, e.g. 'remind them to turn on travel mode'.")
    specialists: list[str] = Field(default_factory=list, description="Only these specialists (default: every one).")


class GuidelineMatcher:
    """A turn note (see Agent.turn_notes): the actions of the guidelines whose condition the message matches."""

    def __init__(self, guidelines: Sequence[Guideline], embedder, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.guidelines = list(guidelines)
        self.embedder = embedder
        self.threshold = threshold
        self._conditions: np.ndarray | None = None

    def matching(self, text: str) -> list[tuple[Guideline, float]]:
        """Guidelines whose condition is close enough to `text`, best first, with their similarity."""
        if not self.guidelines or not text.strip():
            return []
        if self._conditions is None:
            self._conditions = self.embedder.embed_documents([g.when for g in self.guidelines])
        scores = self._conditions @ self.embedder.embed_query(text)
        ranked = sorted(zip(self.guidelines, scores.tolist()), key=lambda p: -p[1])
        return [(g, round(s, 3)) for g, s in ranked if s >= self.threshold]

    async def __call__(self, task: str, history: Sequence[Message]) -> str:
        # Embedding blocks for a few milliseconds: keep it off the event loop all the same.
        matched = await asyncio.to_thread(self.matching, task)
        if not matched:
            return ""
        return "\n".join([HEADER, *(f"- When {g.when}: {g.then}" for g, _ in matched)])
