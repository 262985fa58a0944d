"""A trained intent classifier in front of the team's routing call: confident -> no routing call; unsure -> the model routes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmos.agents import Agent, Team
from llmos.agents.intent_router import IntentRouter
from llmos.errors import ConfigError
from tests.scripted import ScriptedModel


class WordIntents:
    """A Classifier of our own: 'card_lost' for texts that say 'card', 'greeting' for 'hello', else unsure."""

    labels = ["card_lost", "greeting", "other"]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            if "card" in text:
                rows.append([0.95, 0.02, 0.03])
            elif "hello" in text:
                rows.append([0.05, 0.92, 0.03])
            else:
                rows.append([0.4, 0.3, 0.3])
        return np.array(rows)


def team_with(router: IntentRouter, planner: ScriptedModel, cards: ScriptedModel) -> Team:
    return Team([Agent("cards", description="Cards.", model=cards), Agent("loans", description="Loans.", model=ScriptedModel([]))],
                model=planner, router=router)


async def test_a_confident_classifier_routes_without_the_model():
    planner, cards = ScriptedModel([]), ScriptedModel(["Your card is frozen."])
    team = team_with(IntentRouter(WordIntents(), routes={"card_lost": "cards"}), planner, cards)
    result = await team.run("I lost my card")
    assert result.route == "cards" and result.text == "Your card is frozen."
    assert planner.requests == [] and result.model_calls == 1


async def test_a_label_can_route_to_direct():
    planner = ScriptedModel(["Hello! How can I help?"])
    team = team_with(IntentRouter(WordIntents(), routes={"greeting": "direct"}), planner, ScriptedModel([]))
    result = await team.run("hello there")
    assert result.route == "direct" and len(planner.requests) == 1 and planner.requests[0].output_schema is None


async def test_an_unsure_classifier_or_an_unknown_route_leaves_it_to_the_model():
    planner, cards = ScriptedModel([json.dumps({"route": "cards"})]), ScriptedModel(["Done."])
    team = team_with(IntentRouter(WordIntents(), routes={"card_lost": "cards"}), planner, cards)
    assert (await team.run("what about my balance")).route == "cards"  # 0.4: below the threshold
    assert len(planner.requests) == 1
    # Confident, but 'card_lost' maps to no route of this team: the model decides.
    planner, cards = ScriptedModel([json.dumps({"route": "cards"})]), ScriptedModel(["Done."])
    team = team_with(IntentRouter(WordIntents()), planner, cards)
    assert (await team.run("my card")).route == "cards" and len(planner.requests) == 1


def test_a_threshold_outside_zero_to_one_is_refused():
    with pytest.raises(ConfigError, match="threshold"):
        IntentRouter(WordIntents(), threshold=1.5)
