"""Retry over HTTP: `POST /v1/sessions/{id}/turns/{n}/retry` answers a turn left without an answer."""

from __future__ import annotations

import httpx

from llmos.agents import Agent
from llmos.llm import ChatRequest
from llmos.server import ServerSettings
from tests.scripted import ScriptedModel
from tests.server.conftest import create_app, make_key, serve
from tests.server.sessions_support import all_events, bearer, create_session, memory_at, read_events


def boom(request: ChatRequest):
    raise RuntimeError("model server lost")


def test_a_turn_left_unanswered_by_a_stopped_server_is_retried_by_the_next_one_and_stored_once(keys_url, tmp_path):
    secret = make_key(keys_url, "acme", user="C001")
    settings = ServerSettings(keys_url=keys_url, rate_limit_per_minute=0, grace_seconds=0.2)
    first = Agent("support", model=ScriptedModel(["Hello, Maya.", "too late"], delay=0.0))
    with serve(create_app(settings, first, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(secret), id="s1")
        all_events(client, "POST", f"{running.v1}/sessions/s1/messages", json={"content": "Hi, I am Maya."},
                   headers=bearer(secret))
        first.model.delay = 60.0  # the second answer never comes: the server stops first
        with client.stream("POST", f"{running.v1}/sessions/s1/messages", json={"content": "Where is order 7?"},
                           headers=bearer(secret)) as r:
            assert next(read_events(r)).type == "turn"  # acknowledged; then the client goes and the server stops

    model = ScriptedModel(["Order 7 is shipped."])
    with serve(create_app(settings, Agent("support", model=model), memory=memory_at(tmp_path))) as running, \
            httpx.Client(timeout=30) as client:
        v1 = running.v1
        before = client.get(f"{v1}/sessions/{sid}", headers=bearer(secret)).json()
        events = all_events(client, "POST", f"{v1}/sessions/{sid}/turns/2/retry", headers=bearer(secret))
        after = client.get(f"{v1}/sessions/{sid}", headers=bearer(secret)).json()
        again = client.post(f"{v1}/sessions/{sid}/turns/2/retry", headers=bearer(secret))
        answered = client.post(f"{v1}/sessions/{sid}/turns/1/retry", headers=bearer(secret))
        replay = all_events(client, "GET", f"{v1}/sessions/{sid}/events", headers=bearer(secret))
    assert before["unanswered"] == [2] and before["turns"] == 2
    # The same events as a new message's, numbered as turn 2's.
    assert events[0].data == {"type": "turn", "session": "s1", "turn": 2, "message": {"seq": 3, "content": "Where is order 7?"}}
    assert events[-1].type == "final" and events[-1].data["text"] == "Order 7 is shipped."
    assert "text_delta" in {e.type for e in events}
    assert [e.id for e in events] == [f"2:{i}" for i in range(len(events))]
    assert [e.data for e in replay] == [e.data for e in events]
    # The retried run had the first turn as its history, and the message once.
    assert [(m.role, m.content) for m in model.requests[0].messages[1:]] == [
        ("user", "Hi, I am Maya."), ("assistant", "Hello, Maya."), ("user", "Where is order 7?"),
    ]
    assert after["unanswered"] == [] and after["turns"] == 2
    assert [(m["turn"], m["role"], m["content"]) for m in after["messages"]] == [
        (1, "user", "Hi, I am Maya."), (1, "assistant", "Hello, Maya."),
        (2, "user", "Where is order 7?"), (2, "assistant", "Order 7 is shipped."),
    ]
    for refused in (again, answered):
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error["code"] == "turn_answered" and error["type"] == "invalid_request_error"
        assert "already answered" in error["message"] and "send a new message" in error["message"]
    assert len(model.requests) == 1


def test_retry_is_tenant_scoped_refuses_unknown_turns_and_keeps_the_session_lock(settings, keys_url, tmp_path):
    acme = make_key(keys_url, "acme", user="C001")
    acme_other_user = make_key(keys_url, "acme", user="C002")
    globex = make_key(keys_url, "globex", user="C001")
    model = ScriptedModel([boom, "slow answer", "Hello again."], delay=3.0)
    with serve(create_app(settings, Agent("support", model=model), memory=memory_at(tmp_path))) as running, \
            httpx.Client(timeout=30) as client:
        v1 = running.v1
        sid = create_session(client, running.url, bearer(acme), id="s1")
        failed = all_events(client, "POST", f"{v1}/sessions/s1/messages", json={"content": "Hello?"}, headers=bearer(acme))
        others = [client.post(f"{v1}/sessions/{sid}/turns/1/retry", headers=bearer(key)) for key in (globex, acme_other_user)]
        unknown = client.post(f"{v1}/sessions/{sid}/turns/9/retry", headers=bearer(acme))
        not_a_number = client.post(f"{v1}/sessions/{sid}/turns/first/retry", headers=bearer(acme))
        no_session = client.post(f"{v1}/sessions/nope/turns/1/retry", headers=bearer(acme))
        with client.stream("POST", f"{v1}/sessions/{sid}/messages", json={"content": "Anyone?"}, headers=bearer(acme)) as r:
            second = read_events(r)
            assert next(second).type == "turn"
            busy = client.post(f"{v1}/sessions/{sid}/turns/1/retry", headers=bearer(acme))
            rest = list(second)
        retried = all_events(client, "POST", f"{v1}/sessions/{sid}/turns/1/retry", headers=bearer(acme))
        latest = all_events(client, "GET", f"{v1}/sessions/{sid}/events", headers=bearer(acme))
        detail = client.get(f"{v1}/sessions/{sid}", headers=bearer(acme)).json()
    assert failed[-1].type == "error" and "model server lost" in failed[-1].data["message"]
    assert [r.status_code for r in others] == [404, 404]
    assert all(r.json()["error"]["code"] == "session_not_found" for r in others)
    assert no_session.status_code == 404 and no_session.json()["error"]["code"] == "session_not_found"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "turn_not_found"
    assert "has no turn 9" in unknown.json()["error"]["message"]
    assert not_a_number.status_code == 400 and not_a_number.json()["error"]["param"] == "number"
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "session_busy"
    assert rest[-1].data["text"] == "slow answer"
    # Turn 1 is answered after turn 2, in its own place.
    assert retried[0].data["turn"] == 1 and retried[-1].data["text"] == "Hello again."
    assert [e.data for e in latest] == [e.data for e in retried]  # the turn that started last, not the highest number
    assert detail["unanswered"] == []
    assert [(m["turn"], m["content"]) for m in detail["messages"]] == [
        (1, "Hello?"), (1, "Hello again."), (2, "Anyone?"), (2, "slow answer"),
    ]
    assert len(model.requests) == 3
