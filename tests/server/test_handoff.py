"""Human hand-off over HTTP: the support agent escalates, a person answers, the assistant answers again."""

from __future__ import annotations

import json

import httpx

from llmos.agents import Agent, Team
from llmos.agents.specialists.tickets import TicketDesk, TicketStore
from tests.scripted import ScriptedModel
from tests.server.conftest import ToolCall, create_app, echo_agent, make_key, serve
from tests.server.sessions_support import all_events, bearer, create_session, memory_at

SUMMARY = "C001's lamp arrived broken; wants a replacement."


def escalating_team(tmp_path) -> tuple[Team, ScriptedModel, TicketStore]:
    tickets = TicketStore(tmp_path / "tickets.sqlite")
    model = ScriptedModel([
        json.dumps({"route": "support"}),
        ToolCall.make("escalate_to_human", {"reason": "customer asked for a person", "summary": SUMMARY}),
        "I have passed your case to a colleague.",
        # after the hand-back: a new turn, routed and answered
        json.dumps({"route": "support"}),
        lambda r: "I can see: " + " | ".join(m.content for m in r.messages if m.role == "assistant" and m.content),
    ])
    support = Agent("support", description="Support.", tools=TicketDesk(tickets).tools(), model=model)
    return Team([support], model=model, name="shop"), model, tickets


def test_an_escalation_hands_the_session_to_a_person_and_back(settings, keys_url, tmp_path):
    customer = make_key(keys_url, "acme", user="C001")
    operator = make_key(keys_url, "acme", role="operator")
    team, model, tickets = escalating_team(tmp_path)
    with serve(create_app(settings, team, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        v1 = running.v1
        sid = create_session(client, running.url, bearer(customer))
        escalated = all_events(client, "POST", f"{v1}/sessions/{sid}/messages", json={"content": "I want a person."},
                               headers=bearer(customer))
        calls_after_escalation = len(model.requests)
        queued = all_events(client, "POST", f"{v1}/sessions/{sid}/messages", json={"content": "Hello? Anyone?"},
                            headers=bearer(customer))
        via_openai = client.post(
            f"{v1}/chat/completions",
            json={"model": "shop", "messages": [{"role": "user", "content": "Still there?"}]},
            headers=bearer(customer, **{"X-LLMOS-Session": sid}),
        )
        calls_while_human = len(model.requests)
        queue = client.get(f"{v1}/operator/sessions", headers=bearer(operator)).json()["data"]
        seen_by_operator = client.get(f"{v1}/operator/sessions/{sid}", headers=bearer(operator)).json()
        reply = client.post(f"{v1}/operator/sessions/{sid}/messages", json={"content": "Hi, I'm Ana. A new lamp is on its way."},
                            headers=bearer(operator))
        seen_by_customer = client.get(f"{v1}/sessions/{sid}", headers=bearer(customer)).json()
        handed_back = client.post(f"{v1}/operator/sessions/{sid}/handback", headers=bearer(operator))
        again = all_events(client, "POST", f"{v1}/sessions/{sid}/messages", json={"content": "Thanks! What was said?"},
                           headers=bearer(customer))
        queue_after = client.get(f"{v1}/operator/sessions", headers=bearer(operator)).json()["data"]
    handoff = next(e.data for e in escalated if e.type == "handoff")
    assert handoff["mode"] == "human" and handoff["summary"] == SUMMARY
    assert escalated[-1].type == "final"
    # While a person answers: the messages are stored, the assistant is silent and says so.
    assert [e.type for e in queued] == ["queued"] and "person" in queued[0].data["message"]
    assert "person" in via_openai.json()["choices"][0]["message"]["content"]
    assert calls_while_human == calls_after_escalation
    (item,) = queue
    assert item["id"] == sid and item["mode"] == "human" and item["waiting"] == 2
    assert item["handoff"]["summary"] == SUMMARY and item["handoff"]["by"] == "assistant:support"
    assert item["last_message"]["content"] == "Still there?"
    assert [c["name"] for c in seen_by_operator["turns_done"][0]["tool_calls"]] == ["escalate_to_human"]
    assert seen_by_operator["handoff"]["reason"] == "customer asked for a person"
    assert reply.status_code == 201 and reply.json()["author"].startswith("operator:")
    assert seen_by_customer["mode"] == "human" and seen_by_customer["handoff"] is None
    assert [(m["role"], m["content"]) for m in seen_by_customer["messages"][-3:]] == [
        ("user", "Hello? Anyone?"), ("user", "Still there?"), ("assistant", "Hi, I'm Ana. A new lamp is on its way."),
    ]
    assert seen_by_customer["messages"][-1]["author"] == reply.json()["author"]
    assert not any(m["role"] == "tool" for m in seen_by_customer["messages"])
    assert handed_back.json()["mode"] == "assistant" and queue_after == []
    # The assistant answers again, with the person's reply in its history.
    assert again[-1].type == "final" and "A new lamp is on its way." in again[-1].data["text"]
    (ticket,) = tickets.of("acme", "C001")
    assert ticket.handoff and ticket.summary == SUMMARY


def test_an_operator_takes_over_a_session_and_only_then_replies(settings, keys_url, tmp_path):
    customer = make_key(keys_url, "acme", user="C001")
    operator = make_key(keys_url, "acme", role="operator")
    agent, model = echo_agent()
    with serve(create_app(settings, agent, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        v1 = running.v1
        sid = create_session(client, running.url, bearer(customer))
        all_events(client, "POST", f"{v1}/sessions/{sid}/messages", json={"content": "hello"}, headers=bearer(customer))
        too_soon = client.post(f"{v1}/operator/sessions/{sid}/messages", json={"content": "hi"}, headers=bearer(operator))
        taken = client.post(f"{v1}/operator/sessions/{sid}/takeover", json={"reason": "VIP customer"}, headers=bearer(operator))
        queued = all_events(client, "POST", f"{v1}/sessions/{sid}/messages", json={"content": "who is this?"},
                            headers=bearer(customer))
        queue = client.get(f"{v1}/operator/sessions", headers=bearer(operator)).json()["data"]
    assert too_soon.status_code == 409 and "takeover" in too_soon.json()["error"]["message"]
    assert taken.json()["mode"] == "human"
    assert queued[0].type == "queued" and len(model.requests) == 1
    assert queue[0]["handoff"]["reason"] == "VIP customer" and queue[0]["waiting"] == 1


def test_a_customer_waiting_for_new_messages_gets_the_persons_reply_when_it_is_written(settings, keys_url, tmp_path):
    import threading
    import time

    customer = make_key(keys_url, "acme", user="C001")
    operator = make_key(keys_url, "acme", role="operator")
    agent, _ = echo_agent()
    with serve(create_app(settings, agent, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        v1 = running.v1
        sid = create_session(client, running.url, bearer(customer))
        all_events(client, "POST", f"{v1}/sessions/{sid}/messages", json={"content": "hello"}, headers=bearer(customer))
        client.post(f"{v1}/operator/sessions/{sid}/takeover", headers=bearer(operator))
        nothing_new = client.get(f"{v1}/sessions/{sid}/messages?after=2", headers=bearer(customer)).json()
        polled: dict = {}

        def wait_for_reply() -> None:
            with httpx.Client(timeout=30) as own:
                started = time.monotonic()
                polled["body"] = own.get(f"{v1}/sessions/{sid}/messages?after=2&wait=20", headers=bearer(customer)).json()
                polled["seconds"] = time.monotonic() - started

        waiter = threading.Thread(target=wait_for_reply)
        waiter.start()
        time.sleep(0.5)
        client.post(f"{v1}/operator/sessions/{sid}/messages", json={"content": "Ana here."}, headers=bearer(operator))
        waiter.join(timeout=30)
    assert nothing_new["data"] == [] and nothing_new["mode"] == "human"
    assert [m["content"] for m in polled["body"]["data"]] == ["Ana here."]
    assert polled["seconds"] < 10  # woken by the reply, not by the 20 s timeout
