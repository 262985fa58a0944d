"""API keys and tenants: hashed storage, revocation, roles, who may name the user, rate limits, CORS, open mode."""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import openai
import pytest
from typer.testing import CliRunner

from llmos.cli import app as cli
from llmos.errors import ConfigError
from llmos.server import KeyStore, ServerSettings
from llmos.server.launch import check_bind
from tests.server.conftest import ToolCall, create_app, echo_agent, make_key, serve, support_team

HI = {"role": "user", "content": "hi"}


def chat(running, key: str | None, headers: dict | None = None, **body) -> httpx.Response:
    headers = dict(headers or {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.post(running.v1 + "/chat/completions", json={"model": "echo", "messages": [HI], **body}, headers=headers)


def test_keys_are_stored_hashed_and_revocable(tmp_path, keys_url):
    async def scenario():
        keys = KeyStore(keys_url)
        made = await keys.create("acme", label="web shop")
        assert made.secret.startswith("llmos_") and len(made.secret) > 40
        assert (await keys.find(made.secret)).tenant == "acme"
        assert await keys.find(made.secret + "x") is None
        await keys.revoke(made.key.id)
        assert await keys.find(made.secret) is None
        listed = await keys.list_keys()
        await keys.aclose()
        return made, listed

    made, listed = asyncio.run(scenario())
    assert [k.id for k in listed] == [made.key.id] and not listed[0].active
    stored = (tmp_path / "keys.db").read_bytes()
    assert made.secret.encode() not in stored
    row = sqlite3.connect(tmp_path / "keys.db").execute("select secret_sha256 from llmos_api_keys").fetchone()
    assert len(row[0]) == 64 and row[0] not in made.secret


@pytest.mark.parametrize(
    "options, words",
    [
        ({"role": "operator", "user": "C001"}, "operator key"),
        ({"user": "C001", "sets_user": True}, "not both"),
        ({"user": "C 001"}, "not a valid name"),
    ],
)
def test_contradictory_keys_are_refused(keys_url, options, words):
    with pytest.raises(ConfigError, match=words):
        make_key(keys_url, "acme", **options)


def test_missing_invalid_and_revoked_keys_are_401(settings, keys_url):
    secret = make_key(keys_url, "acme", user="C001")
    agent, _ = echo_agent()
    with serve(create_app(settings, agent)) as running:
        assert chat(running, secret).status_code == 200
        missing = chat(running, None)
        wrong = chat(running, "llmos_not-a-key")
        ids = CliRunner().invoke(cli, ["keys", "list", "--keys-url", keys_url]).output
        key_id = next(word for word in ids.split() if word.startswith("key_"))
        revoke = CliRunner().invoke(cli, ["keys", "revoke", key_id, "--keys-url", keys_url])
        with pytest.raises(openai.AuthenticationError) as caught:
            openai.OpenAI(base_url=running.v1, api_key=secret, max_retries=0).chat.completions.create(
                model="echo", messages=[HI]
            )
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert revoke.exit_code == 0 and key_id in revoke.output
    assert caught.value.body["code"] == "invalid_api_key"


def test_operator_keys_do_not_chat_and_customer_keys_do_not_read_metrics(settings, keys_url):
    operator = make_key(keys_url, "acme", role="operator")
    customer = make_key(keys_url, "acme", user="C001")
    agent, model = echo_agent()
    with serve(create_app(settings, agent)) as running:
        as_operator = chat(running, operator)
        metrics_operator = httpx.get(running.url + "/metrics", headers={"Authorization": f"Bearer {operator}"})
        metrics_customer = httpx.get(running.url + "/metrics", headers={"Authorization": f"Bearer {customer}"})
    assert as_operator.status_code == 403 and "customer key" in as_operator.json()["error"]["message"]
    assert metrics_operator.status_code == 200 and "llmos_http_requests_total" in metrics_operator.text
    assert metrics_customer.status_code == 403 and metrics_customer.json()["error"]["code"] == "wrong_key_role"
    assert model.requests == []


def test_only_backend_keys_may_name_the_user(settings, keys_url):
    customer = make_key(keys_url, "acme", user="C001")
    team, model = support_team([ToolCall.make("my_orders"), lambda r: f"Yours: {r.messages[-1].content}"])
    with serve(create_app(settings, team)) as running:
        claimed = chat(running, customer, {"X-LLMOS-User": "C002"}, model="shop")
        bad_name = chat(running, customer, {"X-LLMOS-User": "C002; drop"}, model="shop")
    assert claimed.status_code == 403 and claimed.json()["error"]["code"] == "user_header_not_allowed"
    assert bad_name.status_code == 400 and bad_name.json()["error"]["param"] == "X-LLMOS-User"
    assert model.requests == []


def test_rate_limit_per_key_is_429_with_retry_after(keys_url):
    settings = ServerSettings(keys_url=keys_url, rate_limit_per_minute=6, rate_limit_burst=2)
    first, second = make_key(keys_url, "acme"), make_key(keys_url, "acme")
    agent, _ = echo_agent()
    with serve(create_app(settings, agent)) as running:
        codes = [chat(running, first).status_code for _ in range(2)]
        limited = chat(running, first)
        other = chat(running, second)
    assert codes == [200, 200]
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited.headers["Retry-After"]) <= 10  # one request per 10 s refills
    assert other.status_code == 200  # limits are per key


def test_cors_allows_only_the_configured_origins(keys_url):
    settings = ServerSettings(keys_url=keys_url, cors_origins=["https://shop.example"])
    agent, _ = echo_agent()
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    with serve(create_app(settings, agent)) as running:
        allowed = httpx.options(running.v1 + "/chat/completions", headers={"Origin": "https://shop.example", **preflight})
        refused = httpx.options(running.v1 + "/chat/completions", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://shop.example"
    assert "access-control-allow-origin" not in refused.headers


def test_without_keys_the_server_is_open_to_loopback_until_a_key_exists(settings, keys_url):
    agent, _ = echo_agent()
    with serve(create_app(settings, agent)) as running:
        before = chat(running, None)
        make_key(keys_url, "acme")
        after = chat(running, None)
    assert before.status_code == 200
    assert after.status_code == 401  # keys turn on without a restart, and never off


async def test_without_keys_other_machines_are_refused(settings):
    agent, model = echo_agent()
    app = create_app(settings, agent)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://server") as remote:
        r = await remote.post("/v1/chat/completions", json={"model": "echo", "messages": [HI]})
    assert r.status_code == 403 and "llmos keys create" in r.json()["error"]["message"]
    assert model.requests == []


async def test_binding_beyond_loopback_needs_a_key(keys_url):
    keys = KeyStore(keys_url)
    try:
        assert await check_bind("127.0.0.1", keys) == 0
        with pytest.raises(ConfigError, match="Refusing to listen on 0.0.0.0"):
            await check_bind("0.0.0.0", keys)
        await keys.create("acme")
        assert await check_bind("0.0.0.0", keys) == 1
    finally:
        await keys.aclose()


def test_serve_refuses_a_public_address_without_keys(keys_url):
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--keys-url", keys_url])
    assert result.exit_code == 1
    assert "Refusing to listen on 0.0.0.0" in result.output and "Traceback" not in result.output


def test_keys_cli_shows_the_secret_once(keys_url):
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create", "--tenant", "acme", "--sets-user", "--keys-url", keys_url])
    operator = runner.invoke(cli, ["keys", "create", "--tenant", "acme", "--operator", "--keys-url", keys_url])
    listed = runner.invoke(cli, ["keys", "list", "--keys-url", keys_url])
    secret = made.output.strip().splitlines()[-1]
    assert made.exit_code == 0 and secret.startswith("llmos_")
    assert operator.exit_code == 0 and "operator key" in operator.output
    assert listed.exit_code == 0 and secret not in listed.output
    assert "customer" in listed.output and "operator" in listed.output and "(header)" in listed.output
