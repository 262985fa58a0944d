"""Tool calls that need approval are answered over HTTP by the session's customer: approve, deny, no answer."""

from __future__ import annotations

import httpx

from llmos.agents import Agent
from llmos.server import ServerSettings
from llmos.tools import RunContext, tool
from tests.scripted import ScriptedModel
from tests.server.conftest import ToolCall, create_app, make_key, serve
from tests.server.sessions_support import bearer, create_session, memory_at, read_events


def refund_agent() -> tuple[Agent, list[str]]:
    """An agent that asks to refund O1001, then says what the tool answered."""
    refunded: list[str] = []

    @tool(requires_approval=True)
    def refund(order_id: str, ctx: RunContext) -> str:
        """Refund an order of the signed-in customer.

        Args:
            order_id: The order, like O1001.
        """
        refunded.append(f"{ctx.tenant}/{ctx.user}/{order_id}")
        return f"{order_id} refunded"

    model = ScriptedModel([
        ToolCall.make("refund", {"order_id": "O1001"}),
        lambda r: "Tool said: " + next(m.content for m in reversed(r.messages) if m.role == "tool"),
    ])
    return Agent("support", tools=[refund], model=model), refunded


def run_with_answer(settings, keys_url, tmp_path, answer: bool | None):
    """One turn; `answer` is what the customer says to the approval (None: nothing)."""
    customer = make_key(keys_url, "acme", user="C001")
    neighbour = make_key(keys_url, "acme", user="C002")
    agent, refunded = refund_agent()
    seen: dict = {}
    with serve(create_app(settings, agent, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(customer))
        events = []
        with client.stream("POST", f"{running.v1}/sessions/{sid}/messages", json={"content": "Refund O1001"},
                           headers=bearer(customer)) as r:
            for event in read_events(r):
                events.append(event)
                if event.type == "approval" and event.data["status"] == "requested":
                    url = f"{running.v1}/sessions/{sid}/approvals/{event.data['approval_id']}"
                    seen["neighbour"] = client.post(url, json={"approve": True}, headers=bearer(neighbour))
                    if answer is not None:
                        seen["answer"] = client.post(url, json={"approve": answer}, headers=bearer(customer))
                        seen["twice"] = client.post(url, json={"approve": not answer}, headers=bearer(customer))
        if answer is None:
            seen["late"] = client.post(url, json={"approve": True}, headers=bearer(customer))
        seen["unknown"] = client.post(f"{running.v1}/sessions/{sid}/approvals/apr_nope", json={"approve": True},
                                      headers=bearer(customer))
    return events, refunded, seen


def approvals(events):
    return [e.data for e in events if e.type == "approval"]


def test_an_approved_call_runs_for_the_sessions_customer(settings, keys_url, tmp_path):
    events, refunded, seen = run_with_answer(settings, keys_url, tmp_path, True)
    requested, decided = approvals(events)
    assert requested["call"]["name"] == "refund" and requested["approval_id"].startswith("apr_")
    assert seen["neighbour"].status_code == 404  # another customer of the tenant cannot answer it
    assert seen["answer"].json() == {"approval_id": requested["approval_id"], "status": "approved"}
    assert seen["twice"].status_code == 409 and seen["twice"].json()["error"]["code"] == "approval_closed"
    assert seen["unknown"].status_code == 404
    assert decided["status"] == "approved" and decided["approval_id"] == requested["approval_id"]
    assert refunded == ["acme/C001/O1001"]
    assert events[-1].data["text"] == "Tool said: O1001 refunded"


def test_a_denied_call_does_not_run(settings, keys_url, tmp_path):
    events, refunded, seen = run_with_answer(settings, keys_url, tmp_path, False)
    _, decided = approvals(events)
    assert seen["answer"].json()["status"] == "denied" and decided["status"] == "denied"
    assert refunded == []
    result = next(e.data for e in events if e.type == "tool_result")
    assert result["is_error"] and "denied" in result["content"]


def test_no_answer_in_time_denies_the_call(keys_url, tmp_path):
    settings = ServerSettings(keys_url=keys_url, rate_limit_per_minute=0, approval_seconds=0.5)
    events, refunded, seen = run_with_answer(settings, keys_url, tmp_path, None)
    requested, decided = approvals(events)
    assert requested["timeout_s"] == 0.5
    assert decided["status"] == "denied" and "0.5 s" in decided["reason"]
    assert refunded == []
    assert seen["late"].status_code == 409 and "in time" in seen["late"].json()["error"]["message"]


def test_through_the_openai_endpoint_a_call_that_needs_approval_is_denied_at_once(settings, keys_url, tmp_path):
    customer = make_key(keys_url, "acme", user="C001")
    agent, refunded = refund_agent()
    with serve(create_app(settings, agent, memory=memory_at(tmp_path))) as running, httpx.Client(timeout=30) as client:
        sid = create_session(client, running.url, bearer(customer))
        r = client.post(
            running.v1 + "/chat/completions",
            json={"model": "support", "messages": [{"role": "user", "content": "Refund O1001"}]},
            headers=bearer(customer, **{"X-LLMOS-Session": sid}),
        )
    # An OpenAI client cannot answer an approval event: no waiting out the 300 s timeout.
    assert "no one to approve it" in r.json()["choices"][0]["message"]["content"]
    assert refunded == []
