"""Route a goal by a trained intent classifier before asking the model.

    router = IntentRouter(load_classifier("intents"), threshold=0.9, routes={"card_arrival": "cards", "greeting": "direct"})
    team = Team([cards, payments], router=router)

When the classifier's most probable label maps to one of the team's routes (a specialist's
name, "plan" or "direct") with at least `threshold` probability, the team takes that road
without the routing call; otherwise the model routes as usual. The classifier sees the goal
alone, not the conversation, and a confident single label cannot see a second intent: keep the
threshold high, and train on messages as customers write them.
"""

from __future__ import annotations

import asyncio

from llmos.classifiers.base import Classifier, predict


class IntentRouter:
    """classifier: any Classifier. routes: label -> route (default: a label is its own route).
    Labels that map to no route of the team always leave the choice to the model."""

    def __init__(self, classifier: Classifier, *, threshold: float = 0.9, routes: dict[str, str] | None = None) -> None:
        if not 0 < threshold <= 1:
            from llmos.errors import ConfigError

            raise ConfigError(f"The router's threshold must be in (0, 1], got {threshold}.")
        self.classifier = classifier
        self.threshold = threshold
        self.routes = routes or {}

    def choose(self, goal: str, allowed: set[str]) -> str | None:
        """The route for `goal`, or None when the classifier is unsure or names no allowed route."""
        best = predict(self.classifier, [goal])[0]
        route = self.routes.get(best.label, best.label)
        return route if best.confidence >= self.threshold and route in allowed else None

    async def achoose(self, goal: str, allowed: set[str]) -> str | None:
        return await asyncio.to_thread(self.choose, goal, allowed)  # encoding is CPU work: keep the event loop free
