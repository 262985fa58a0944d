"""Operations: health and readiness, Prometheus metrics, request ids in JSON logs, graceful shutdown."""

from __future__ import annotations

import json
import logging
import threading
import time

import httpx
import pytest
import uvicorn

from llmos.agents import Agent
from llmos.llm.openai import OpenAIModel
from tests.scripted import ScriptedModel
from tests.server.conftest import ToolCall, create_app, echo_agent, make_key, serve, support_team

HI = {"role": "user", "content": "hi"}


def test_healthz_and_readyz_follow_the_model_server(settings):
    agent, _ = echo_agent()
    with serve(create_app(settings, agent)) as backend:  # an llmos server is an OpenAI-compatible model server
        up = Agent("front", model=OpenAIModel("echo", backend.v1))
        down = Agent("front", model=OpenAIModel("echo", "http://127.0.0.1:9/v1"))
        with serve(create_app(settings, up)) as ready, serve(create_app(settings, down)) as broken:
            health = httpx.get(broken.url + "/healthz")
            ready_answer = httpx.get(ready.url + "/readyz")
            broken_answer = httpx.get(broken.url + "/readyz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready_answer.status_code == 200 and ready_answer.json()["status"] == "ready"
    assert broken_answer.status_code == 503 and "127.0.0.1:9" in broken_answer.json()["reason"]


def test_metrics_count_requests_runs_tokens_first_tokens_and_tool_errors(settings):
    team, _ = support_team([ToolCall.make("order_status", {"order_id": "O2002"}), "Sorry, that is not your order."])
    failing = Agent("broken", model=ScriptedModel([]))
    with serve(create_app(settings, {"shop": team, "broken": failing})) as running:
        # no keys: the open server takes the user from the header (loopback only)
        ok = httpx.post(running.v1 + "/chat/completions", headers={"X-LLMOS-User": "C001"},
                        json={"model": "shop", "messages": [HI], "stream": True})
        failed = httpx.post(running.v1 + "/chat/completions", json={"model": "broken", "messages": [HI]})
        text = httpx.get(running.url + "/metrics").text
    assert ok.status_code == 200 and failed.status_code == 500

    def value(line_start: str) -> float:
        lines = [line for line in text.splitlines() if line.startswith(line_start)]
        assert lines, f"no metric {line_start} in:\n{text}"
        return float(lines[0].rsplit(" ", 1)[1])

    assert value('llmos_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}') == 1
    assert value('llmos_http_requests_total{method="POST",route="/v1/chat/completions",status="500"}') == 1
    assert value('llmos_runs_total{outcome="ok"}') == 1 and value('llmos_runs_total{outcome="error"}') == 1
    assert value('llmos_tokens_total{kind="prompt"}') == 30 and value('llmos_tokens_total{kind="completion"}') == 15
    assert value('llmos_tool_errors_total{tool="order_status"}') == 1
    assert value("llmos_time_to_first_token_seconds_count") == 1
    assert value('llmos_http_request_seconds_count{route="/v1/chat/completions"}') == 2


def test_logs_are_json_with_the_request_id_and_no_secret(settings, keys_url, caplog):
    from llmos.server.observability import JsonFormatter

    secret = make_key(keys_url, "acme", user="C001")
    agent, _ = echo_agent()
    with caplog.at_level(logging.INFO, logger="llmos.server"), serve(create_app(settings, agent)) as running:
        given = httpx.post(running.v1 + "/chat/completions", json={"model": "echo", "messages": [HI]},
                           headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "shop-42"})
        made = httpx.post(running.v1 + "/chat/completions", json={"model": "echo", "messages": [HI]},
                          headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "bad id\twith tab"})
    assert given.headers["X-Request-ID"] == "shop-42"
    assert made.headers["X-Request-ID"].startswith("req_")  # an unsafe id is replaced, not logged
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records if r.getMessage() == "request"]
    assert [line["request_id"] for line in lines] == ["shop-42", made.headers["X-Request-ID"]]
    assert lines[0]["tenant"] == "acme" and lines[0]["key_id"].startswith("key_") and lines[0]["status"] == 200
    everything = "\n".join(formatter.format(r) for r in caplog.records)
    assert secret not in everything and "Bearer" not in everything and "hi" not in json.dumps(lines)


def test_a_run_in_flight_finishes_when_the_server_stops(settings):
    model = ScriptedModel(["Finished despite the shutdown."], delay=1.0)
    app = create_app(settings, Agent("slow", model=model))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        answers: list[httpx.Response] = []
        request = threading.Thread(target=lambda: answers.append(httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions", json={"model": "slow", "messages": [HI]}, timeout=20)))
        request.start()
        while not model.requests:  # the run has started
            time.sleep(0.01)
        server.should_exit = True  # what SIGTERM does
        request.join(timeout=20)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["choices"][0]["message"]["content"] == "Finished despite the shutdown."
    assert not thread.is_alive()
