"""Sessions over HTTP: the session header, the native SSE stream, reconnection, one turn at a time, tenants."""

from __future__ import annotations

import json

import httpx
import pytest

from llmos.server import ServerSettings
from tests.scripted import ScriptedModel
from tests.server.conftest import ToolCall, create_app, echo_agent, make_key, serve, support_team
from tests.server.sessions_support import all_events, bearer, create_session, memory_at, read_events


def test_the_session_header_continues_the_stored_conversation(settings, keys_url, tmp_path):
    secret = make_key(keys_url, "acme", user="C001")
    agent, model = echo_agent()
    with serve(create_app(settings, agent, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(secret))
        headers = bearer(secret, **{"X-LLMOS-Session": sid})

        def say(text: str) -> httpx.Response:
            return client.post(
                running.v1 + "/chat/completions",
                json={"model": "echo", "messages": [{"role": "user", "content": text}]},
                headers=headers,
            )

        first, second = say("My lamp is broken."), say("What did I say?")
        streamed = client.post(
            running.v1 + "/chat/completions",
            json={"model": "echo", "stream": True, "messages": [{"role": "user", "content": "And now?"}]},
            headers=headers,
        )
        whole = client.post(
            running.v1 + "/chat/completions",
            json={"model": "echo", "messages": [
                {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "x"},
            ]},
            headers=headers,
        )
        detail = client.get(f"{running.v1}/sessions/{sid}", headers=bearer(secret)).json()
    assert first.status_code == second.status_code == 200 and first.headers["X-LLMOS-Session"] == sid
    # The second request carried the first turn from the store: system, user, assistant, user.
    contents = [m.content for m in model.requests[1].messages]
    assert contents[1:] == ["My lamp is broken.", first.json()["choices"][0]["message"]["content"], "What did I say?"]
    chunks = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "I got 6 messages."
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert whole.status_code == 400 and "only the new user message" in whole.json()["error"]["message"]
    assert [(m["role"], m["content"]) for m in detail["messages"]] == [
        ("user", "My lamp is broken."), ("assistant", "I got 2 messages."),
        ("user", "What did I say?"), ("assistant", "I got 4 messages."),
        ("user", "And now?"), ("assistant", "I got 6 messages."),
    ]


def test_the_native_stream_sends_the_runs_events_with_ids_and_the_answer_is_stored(settings, keys_url, tmp_path):
    secret = make_key(keys_url, "acme", user="C001")
    team, _ = support_team([ToolCall.make("my_orders"), "You have one order, O1001."])
    with serve(create_app(settings, team, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(secret), id="chat-1")
        events = all_events(client, "POST", f"{running.v1}/sessions/{sid}/messages", json={"content": "My orders?"},
                            headers=bearer(secret))
        detail = client.get(f"{running.v1}/sessions/{sid}", headers=bearer(secret)).json()
        listed = client.get(f"{running.v1}/sessions", headers=bearer(secret)).json()
    types = [e.type for e in events]
    assert types[0] == "turn" and types[-1] == "final"
    assert {"plan", "subtask_started", "tool_call", "tool_result", "text_delta", "subtask_finished"} <= set(types)
    assert [e.id for e in events] == [f"1:{i}" for i in range(len(events))]
    result = next(e.data for e in events if e.type == "tool_result")
    assert result["name"] == "my_orders" and "O1001" in result["content"]
    assert events[-1].data["text"].startswith("You have one order, O1001.")
    assert detail["messages"][-1]["content"] == events[-1].data["text"] and detail["unanswered"] == []
    assert [s["id"] for s in listed["data"]] == ["chat-1"]


def test_a_client_that_reconnects_with_last_event_id_misses_nothing_and_gets_nothing_twice(settings, keys_url, tmp_path):
    secret = make_key(keys_url, "acme", user="C001")
    model = ScriptedModel(
        [json_route("support"), ToolCall.make("my_orders"), ToolCall.make("order_status", {"order_id": "O1001"}),
         "O1001 has shipped and is on its way to you."],
        delay=0.3,
    )
    from llmos.agents import Agent, Team
    from tests.server.conftest import my_orders, order_status

    team = Team([Agent("support", description="Orders.", tools=[my_orders, order_status], model=model)], model=model, name="shop")
    with serve(create_app(settings, team, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(secret))
        before = []
        with client.stream("POST", f"{running.v1}/sessions/{sid}/messages", json={"content": "Where is my order?"},
                           headers=bearer(secret)) as r:
            for event in read_events(r):
                before.append(event)
                if event.type == "tool_call":
                    break  # the connection drops in the middle of the run
        after = all_events(client, "GET", f"{running.v1}/sessions/{sid}/events",
                           headers=bearer(secret, **{"Last-Event-ID": before[-1].id}))
        whole = all_events(client, "GET", f"{running.v1}/sessions/{sid}/events", headers=bearer(secret))
        detail = client.get(f"{running.v1}/sessions/{sid}", headers=bearer(secret)).json()
        bad = client.get(f"{running.v1}/sessions/{sid}/events", headers=bearer(secret, **{"Last-Event-ID": "soon"}))
        gone = client.get(f"{running.v1}/sessions/{sid}/events", headers=bearer(secret, **{"Last-Event-ID": "7:0"}))
    assert before[-1].type == "tool_call" and after[-1].type == "final"
    assert [e.id for e in before + after] == [e.id for e in whole]  # nothing missed, nothing twice
    assert [e.data for e in before + after] == [e.data for e in whole]
    assert "on its way" in detail["messages"][-1]["content"]  # the dropped connection did not stop the run
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]["message"]
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "events_expired"


def json_route(name: str) -> str:
    return json.dumps({"route": name})


def test_a_second_message_while_a_turn_runs_is_refused_and_cancel_stops_the_turn(settings, keys_url, tmp_path):
    secret = make_key(keys_url, "acme", user="C001")
    model = ScriptedModel(["slow answer"], delay=5.0)
    from llmos.agents import Agent

    agent = Agent("slow", model=model)
    with serve(create_app(settings, agent, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(secret))
        with client.stream("POST", f"{running.v1}/sessions/{sid}/messages", json={"content": "first"},
                           headers=bearer(secret)) as r:
            events = read_events(r)
            assert next(events).type == "turn"
            second = client.post(f"{running.v1}/sessions/{sid}/messages", json={"content": "second"}, headers=bearer(secret))
            via_openai = client.post(
                running.v1 + "/chat/completions",
                json={"model": "slow", "messages": [{"role": "user", "content": "third"}]},
                headers=bearer(secret, **{"X-LLMOS-Session": sid}),
            )
            listed = client.get(f"{running.v1}/sessions/{sid}", headers=bearer(secret)).json()
            cancelled = client.post(f"{running.v1}/sessions/{sid}/cancel", headers=bearer(secret))
            rest = list(events)
        detail = client.get(f"{running.v1}/sessions/{sid}", headers=bearer(secret)).json()
        again = client.post(f"{running.v1}/sessions/{sid}/cancel", headers=bearer(secret))
    assert second.status_code == via_openai.status_code == 409
    assert second.json()["error"]["code"] == "session_busy" and "cancel" in second.json()["error"]["message"]
    assert listed["running_turn"] == 1
    assert cancelled.json() == {"session": sid, "turn": 1, "status": "cancelled"} and rest[-1].type == "cancelled"
    assert [m["content"] for m in detail["messages"]] == ["first"] and detail["unanswered"] == [1]
    assert again.status_code == 409


def test_with_the_store_set_to_wait_a_second_message_is_answered_after_the_first(settings, keys_url, tmp_path):
    secret = make_key(keys_url, "acme", user="C001")
    agent, _ = echo_agent()
    agent.model.delay = 0.5
    with serve(create_app(settings, agent, memory=memory_at(tmp_path, on_busy="wait"))) as running, \
            httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(secret))
        with client.stream("POST", f"{running.v1}/sessions/{sid}/messages", json={"content": "one"},
                           headers=bearer(secret)) as r:
            first = read_events(r)
            assert next(first).type == "turn"
            second = all_events(client, "POST", f"{running.v1}/sessions/{sid}/messages", json={"content": "two"},
                                headers=bearer(secret))
            rest = list(first)
    assert rest[-1].data["text"] == "I got 2 messages."
    assert second[0].data["turn"] == 2 and second[-1].data["text"] == "I got 4 messages."


def test_sessions_of_another_tenant_or_user_answer_404_on_every_endpoint(settings, keys_url, tmp_path):
    acme = make_key(keys_url, "acme", user="C001")
    acme_other_user = make_key(keys_url, "acme", user="C002")
    globex = make_key(keys_url, "globex", user="C001")
    globex_operator = make_key(keys_url, "globex", role="operator")
    agent, _ = echo_agent()
    with serve(create_app(settings, agent, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(acme), id="s1")
        all_events(client, "POST", f"{running.v1}/sessions/s1/messages", json={"content": "hello"}, headers=bearer(acme))
        v1 = running.v1
        for key in (globex, acme_other_user):
            calls = [
                client.get(f"{v1}/sessions/{sid}", headers=bearer(key)),
                client.delete(f"{v1}/sessions/{sid}", headers=bearer(key)),
                client.post(f"{v1}/sessions/{sid}/messages", json={"content": "hi"}, headers=bearer(key)),
                client.get(f"{v1}/sessions/{sid}/messages?after=0&wait=1", headers=bearer(key)),
                client.get(f"{v1}/sessions/{sid}/events", headers=bearer(key)),
                client.get(f"{v1}/sessions/{sid}/events", headers=bearer(key, **{"Last-Event-ID": "1:0"})),
                client.post(f"{v1}/sessions/{sid}/cancel", headers=bearer(key)),
                client.post(f"{v1}/sessions/{sid}/approvals/apr_x", json={"approve": True}, headers=bearer(key)),
                client.post(f"{v1}/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "x"}]},
                            headers=bearer(key, **{"X-LLMOS-Session": sid})),
            ]
            assert [c.status_code for c in calls] == [404] * len(calls), [c.text for c in calls]
            assert all(c.json()["error"]["code"] == "session_not_found" for c in calls)
            assert client.get(f"{v1}/sessions", headers=bearer(key)).json()["data"] == []
        for call in (
            client.get(f"{v1}/operator/sessions/{sid}", headers=bearer(globex_operator)),
            client.post(f"{v1}/operator/sessions/{sid}/takeover", headers=bearer(globex_operator)),
            client.post(f"{v1}/operator/sessions/{sid}/messages", json={"content": "hi"}, headers=bearer(globex_operator)),
            client.post(f"{v1}/operator/sessions/{sid}/handback", headers=bearer(globex_operator)),
        ):
            assert call.status_code == 404 and call.json()["error"]["code"] == "session_not_found"
        assert client.get(f"{v1}/operator/sessions?mode=assistant", headers=bearer(globex_operator)).json()["data"] == []
        # The same id in another tenant is another session.
        assert create_session(client, running.url, bearer(globex), id="s1") == "s1"
        theirs = client.get(f"{v1}/sessions/s1", headers=bearer(globex)).json()
        ours = client.get(f"{v1}/sessions/s1", headers=bearer(acme)).json()
    assert theirs["messages"] == [] and [m["content"] for m in ours["messages"]] == ["hello", "I got 2 messages."]


def test_keys_of_the_wrong_role_are_refused(settings, keys_url, tmp_path):
    customer = make_key(keys_url, "acme", user="C001")
    operator = make_key(keys_url, "acme", role="operator")
    agent, _ = echo_agent()
    with serve(create_app(settings, agent, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(customer))
        v1 = running.v1
        refused = [
            client.get(f"{v1}/operator/sessions", headers=bearer(customer)),
            client.get(f"{v1}/operator/sessions/{sid}", headers=bearer(customer)),
            client.post(f"{v1}/operator/sessions/{sid}/takeover", headers=bearer(customer)),
            client.post(f"{v1}/operator/sessions/{sid}/messages", json={"content": "hi"}, headers=bearer(customer)),
            client.post(f"{v1}/operator/sessions/{sid}/handback", headers=bearer(customer)),
            client.post(f"{v1}/sessions", json={}, headers=bearer(operator)),
        ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all(r.json()["error"]["code"] == "wrong_key_role" for r in refused)


def test_bad_bodies_get_clear_errors(settings, keys_url, tmp_path):
    secret = make_key(keys_url, "acme", user="C001")
    agent, _ = echo_agent()
    with serve(create_app(ServerSettings(keys_url=keys_url, rate_limit_per_minute=0), agent, memory=memory_at(tmp_path))) \
            as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(secret), id="taken")
        empty = client.post(f"{running.v1}/sessions/{sid}/messages", json={"content": ""}, headers=bearer(secret))
        unknown_field = client.post(f"{running.v1}/sessions/{sid}/messages", json={"text": "hi"}, headers=bearer(secret))
        not_json = client.post(f"{running.v1}/sessions/{sid}/messages", content=b"{", headers=bearer(secret))
        taken = client.post(f"{running.v1}/sessions", json={"id": "taken"}, headers=bearer(secret))
        no_model = client.post(f"{running.v1}/sessions", json={"model": "gpt-9"}, headers=bearer(secret))
    assert empty.status_code == unknown_field.status_code == not_json.status_code == 400
    assert "content" in empty.json()["error"]["message"] and "text" in unknown_field.json()["error"]["message"]
    assert not_json.json()["error"]["code"] == "invalid_json"
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "session_exists"
    assert no_model.status_code == 404 and "echo" in no_model.json()["error"]["message"]


def test_a_server_that_stops_records_the_turns_it_could_not_finish_as_failed(keys_url, tmp_path):
    import asyncio

    from llmos.agents import Agent
    from llmos.memory import SQLSessionStore

    secret = make_key(keys_url, "acme", user="C001")
    settings = ServerSettings(keys_url=keys_url, rate_limit_per_minute=0, grace_seconds=0.2)
    agent = Agent("slow", model=ScriptedModel(["too late"], delay=60.0))
    with serve(create_app(settings, agent, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(secret))
        with client.stream("POST", f"{running.v1}/sessions/{sid}/messages", json={"content": "hello"},
                           headers=bearer(secret)) as r:
            assert next(read_events(r)).type == "turn"  # acknowledged; then the client goes and the server stops

    async def turns():
        store = SQLSessionStore(f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}")
        try:
            return await store.turns(sid, tenant="acme")
        finally:
            await store.close()

    (turn,) = asyncio.run(turns())
    assert turn.status == "failed" and turn.user_message.message.content == "hello" and turn.messages == []


def test_the_openai_client_continues_a_session_with_the_header(settings, keys_url, tmp_path):
    import openai

    secret = make_key(keys_url, "acme", user="C001")
    agent, model = echo_agent()
    with serve(create_app(settings, agent, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(secret))
        oa = openai.OpenAI(base_url=running.v1, api_key=secret, max_retries=0)
        session = {"X-LLMOS-Session": sid}
        plain = oa.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "one"}], extra_headers=session
        )
        streamed = oa.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "two"}], extra_headers=session, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
        with pytest.raises(openai.NotFoundError, match="no session 'nope'"):
            oa.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "x"}], extra_headers={"X-LLMOS-Session": "nope"}
            )
    assert plain.choices[0].message.content == "I got 2 messages." and text == "I got 4 messages."
