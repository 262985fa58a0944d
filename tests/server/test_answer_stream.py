"""Which streamed text is the answer: specialists' working text is not, the tail added by code is sent last."""

from __future__ import annotations

import json

import httpx

from llmos.agents import Agent, Team
from llmos.agents.events import PlanEvent, SubtaskStartedEvent, TextDeltaEvent, ToolCallEvent
from llmos.agents.plan import Plan, Subtask
from llmos.llm import ToolCall
from llmos.server.openai_api import AnswerText
from tests.scripted import ScriptedModel
from tests.server.conftest import create_app, serve


def one_plan(*ids: str) -> PlanEvent:
    return PlanEvent(plan=Plan(subtasks=[Subtask(id=i, specialist="support", instruction="x") for i in ids]), route="plan")


def test_a_single_subtask_streams_and_words_before_a_tool_call_are_not_repeated():
    answer = AnswerText()
    sent = [
        answer.feed(one_plan("s1")),
        answer.feed(SubtaskStartedEvent(agent="support", subtask="s1", instruction="x")),
        answer.feed(TextDeltaEvent(agent="support", subtask="s1", text="Let me check. ")),
        answer.feed(ToolCallEvent(agent="support", subtask="s1", call=ToolCall.make("my_orders"))),
        answer.feed(TextDeltaEvent(agent="support", subtask="s1", text="It shipped.")),
    ]
    assert "".join(sent) == "Let me check. It shipped."
    assert answer.rest("It shipped.\n\nSources:\n[1] orders") == "\n\nSources:\n[1] orders"


def test_with_several_subtasks_only_the_planners_text_is_the_answer():
    answer = AnswerText()
    answer.feed(one_plan("s1", "s2"))
    assert answer.feed(TextDeltaEvent(agent="support", subtask="s1", text="working notes")) == ""
    assert answer.feed(TextDeltaEvent(agent="planner", text="Both done [1].")) == "Both done [1]."
    # the answer's citations were renumbered by code: what differs is sent after what was streamed
    assert answer.rest("Both done [2].") == "\n\nBoth done [2]."


def test_a_planned_team_streams_the_same_answer_as_it_returns(settings):
    def build() -> Team:
        plan = json.dumps({"subtasks": [
            {"id": "s1", "specialist": "a", "instruction": "Do s1.", "depends_on": [], "returns": ""},
            {"id": "s2", "specialist": "b", "instruction": "Do s2.", "depends_on": [], "returns": ""},
        ]})
        planner = ScriptedModel([json.dumps({"route": "plan"}), plan, "Both parts are done."])
        a = Agent("a", description="A.", model=ScriptedModel(["part one from a"]))
        b = Agent("b", description="B.", model=ScriptedModel([]))  # fails: reported by code after the answer
        return Team([a, b], model=planner, max_replans=0, retries=0, name="two")

    body = {"model": "two", "messages": [{"role": "user", "content": "Do both."}]}
    with serve(create_app(settings, {"two": build()})) as running:
        plain = httpx.post(running.v1 + "/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    with serve(create_app(settings, {"two": build()})) as running:
        with httpx.stream("POST", running.v1 + "/chat/completions", json={**body, "stream": True}) as r:
            chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert plain.startswith("Both parts are done.") and "Do s2." in plain  # the failure is reported
    assert "part one from a" not in streamed  # a specialist's working text is not the answer
    assert streamed == plain
