"""The web chat in real headless Chromium (Debian's package, driven by Playwright; `make chromium` installs it).

A real server on a free port serves a team whose support specialist searches the tenant's
uploaded documents (a real knowledge base); the scripted model decides when to search and
what to say. In the browser: keys typed in, a message sent, the answer seen arriving piece
by piece with its sources, a source opened to its passage, a file uploaded, and an answer
that cites it. Screenshots are saved under the test's tmp folder.
"""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from llmos.agents.events import PlanEvent, TextDeltaEvent, ToolCallEvent, ToolResultEvent
from llmos.agents.plan import Plan
from llmos.llm import ToolCall
from llmos.server.webchat import ASSETS, STATIC
from tests.server.conftest import create_app, echo_agent, make_key, serve
from tests.server.knowledge_fixtures import (  # noqa: F401 - fixtures
    RETURNS,
    WARRANTY,
    embedder,
    knowledge_team,
    library,
    search_then_cite,
)

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser

# Records every text the streaming answer shows, to tell a streamed answer from one that appears whole.
WATCH_STREAM = """
window.seen = [];
new MutationObserver(() => {
  const text = document.querySelector('#messages li.streaming .text');
  if (text && text.textContent && window.seen.at(-1) !== text.textContent) window.seen.push(text.textContent);
}).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(autouse=True)
def _own_home(tmp_path, monkeypatch):
    """Whatever the server keeps by default (sessions, documents) goes to this test's folder."""
    from llmos.config import get_settings

    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def browser():
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_the_page_and_its_files_are_served_without_a_build_step(settings):
    agent, _ = echo_agent()
    with serve(create_app(settings, agent)) as running:
        page = httpx.get(running.url + "/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for name in ASSETS:
            assert f"/static/{name}" in page.text
            served = httpx.get(f"{running.url}/static/{name}")
            assert served.status_code == 200 and served.content == (STATIC / name).read_bytes()
        assert httpx.get(running.url + "/static/..%2Fapp.py").status_code == 404


def test_chat_streams_cites_and_answers_from_an_uploaded_file(browser, settings, keys_url, library, tmp_path):
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API keeps an event loop running in this thread
        customer = thread.submit(make_key, keys_url, "acme").result()
        operator = thread.submit(make_key, keys_url, "acme", role="operator").result()
    team, _ = knowledge_team(
        library,
        [
            *search_then_cite("damaged lamp", "Sorry about the lamp! A damaged lamp is replaced free of charge [1]. Send us a photo."),
            *search_then_cite("solar battery warranty", "Solar batteries are covered for 7 years [1]."),
        ],
        piece_delay=0.05,
    )
    library.add("acme", "returns.md", RETURNS.encode())  # the tenant's documents before the page opens
    warranty = tmp_path / "warranty.md"
    warranty.write_text(WARRANTY)
    shots = tmp_path / "screenshots"
    shots.mkdir()

    from playwright.sync_api import expect

    with serve(create_app(settings, team, knowledge=library)) as running:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        try:
            page.goto(running.url + "/")
            # Without a key the API refuses, and the page says so.
            expect(page.locator("#error")).to_contain_text("Missing API key")
            page.fill("#api-key", customer)
            page.dispatch_event("#api-key", "change")
            page.fill("#operator-key", operator)
            page.dispatch_event("#operator-key", "change")
            page.wait_for_selector("#model option[value=shop]", state="attached")
            assert page.evaluate("localStorage.getItem('llmos.apiKey')") == customer
            page.wait_for_selector("#documents li:has-text('returns.md')")
            expect(page.locator("#upload-status")).to_have_text("")  # the keyless listing's 401 is gone

            # 1. A question: the answer streams in, then lists its source; the source opens its passage.
            page.evaluate(WATCH_STREAM)
            page.fill("#prompt", "My lamp arrived broken. What now?")
            page.click("#send")
            first = page.locator("#messages > li.assistant").nth(0)
            first.locator(".sources").wait_for()
            seen = page.evaluate("window.seen")
            assert len(seen) >= 5 and all(b.startswith(a) for a, b in zip(seen, seen[1:])), seen
            assert "replaced free of charge [1]" in first.locator(".text").inner_text()
            # The page keeps conversations on the server when it has a sessions API, else in the browser.
            has_sessions = httpx.get(running.url + "/v1/sessions", headers={"Authorization": f"Bearer {customer}"}).status_code != 404
            assert page.evaluate("sessions.kind") == ("server" if has_sessions else "local")
            if has_sessions:  # then llmos's events come too: the search shows under the answer, collapsed
                steps = first.locator("details.steps")
                assert steps.get_attribute("open") is None
                expect(steps).to_contain_text("search_policies")
            source = first.locator(".sources a.source")
            assert source.inner_text() == "[1] returns.md, Returns > Damaged items"
            source.click()
            expect(first.locator("blockquote.passage")).to_contain_text("Send a photo of the damage")
            page.screenshot(path=str(shots / "1-answer-with-source.png"), full_page=True)

            # 2. Upload a file into the tenant's knowledge base, then ask what only that file says.
            page.set_input_files("#upload-files", str(warranty))
            page.click("#upload button[type=submit]")
            page.wait_for_selector("#upload-status:has-text('Added warranty.md')", timeout=60_000)
            page.wait_for_selector("#documents li:has-text('warranty.md')")
            page.fill("#prompt", "How long is the warranty on solar batteries?")
            page.click("#send")
            second = page.locator("#messages > li.assistant").nth(1)
            second.locator(".sources").wait_for()
            assert "covered for 7 years [1]" in second.locator(".text").inner_text()
            assert second.locator(".sources a.source").inner_text() == "[1] warranty.md, Warranty > Batteries"
            second.locator("a.marker").click()  # the [1] in the text opens the same passage
            expect(second.locator("blockquote.passage")).to_contain_text("warranty of 7 years")
            page.screenshot(path=str(shots / "2-answer-citing-upload.png"), full_page=True)

            # 3. The conversation is in the session list; a new one starts empty; the old one comes back.
            expect(page.locator("#sessions li")).to_have_count(1)
            page.click("#new-session")
            expect(page.locator("#messages > li")).to_have_count(0)
            page.click("#sessions li button.open")
            expect(page.locator("#messages > li")).to_have_count(4)
            expect(page.locator("#messages .sources a.source")).to_have_text([
                "[1] returns.md, Returns > Damaged items",
                "[1] warranty.md, Warranty > Batteries",
            ])
            page.screenshot(path=str(shots / "3-session-reopened.png"), full_page=True)
        finally:
            page.close()
    for shot in sorted(shots.iterdir()):
        print(f"screenshot: {shot}")
    assert [s.name for s in sorted(shots.iterdir())] == [
        "1-answer-with-source.png", "2-answer-citing-upload.png", "3-session-reopened.png",
    ]


# --- the page and the sessions API's events ------------------------------------------------------------
# The sessions API (POST /v1/sessions/{id}/messages, streaming llmos events) is served by
# llmos.server.sessions_api; here the browser's requests to it are answered with those events, built
# from llmos's own event classes, so that the page's side of that contract is tested on its own: the
# plan and tool calls shown collapsed, a tool call the customer allows, the hand-off banner, a
# person's reply appearing.


def sse(*events: dict) -> str:
    return "".join(f"id: 1:{i}\ndata: {json.dumps(e)}\n\n" for i, e in enumerate(events))


def first_turn_events() -> list[dict]:
    call = ToolCall.make("escalate_to_human", {"summary": "Broken lamp, wants a person"})
    plan = Plan.single("support", "My lamp is broken, I want a person.")
    answer = "I have asked a colleague to take over."
    return [
        {"type": "turn", "session": "s1", "turn": 1, "message": {"seq": 1, "content": "hi"}},
        PlanEvent(plan=plan, route="support").model_dump(mode="json"),
        ToolCallEvent(agent="support", call=call, subtask="s1").model_dump(mode="json"),
        ToolResultEvent(agent="support", call_id=call.id, name=call.name, content="escalated", subtask="s1").model_dump(mode="json"),
        {"type": "approval", "status": "requested", "approval_id": "apr_1", "agent": "support",
         "call": ToolCall.make("create_ticket", {"subject": "Broken lamp"}).model_dump(mode="json"),
         "description": "Opens a support ticket", "timeout_s": 300},
        *(TextDeltaEvent(agent="support", text=w, subtask="s1").model_dump(mode="json") for w in answer.split(" ")),
        {"type": "final", "agent": "shop", "text": answer, "citations": [], "usage": {}},
        {"type": "handoff", "mode": "human", "reason": "escalated", "summary": "Broken lamp", "message": "A person..."},
    ]


def test_the_page_shows_steps_approvals_the_handoff_banner_and_a_persons_reply(browser, settings, tmp_path):
    from playwright.sync_api import expect

    stored = {"id": "s1", "object": "session", "title": "My lamp", "user": None, "mode": "human", "model": "echo",
              "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z", "turns": 2, "running_turn": None}
    person = {"seq": 4, "turn": 2, "role": "assistant", "content": "Hello, I am Ana from the shop. I will send a new lamp.",
              "author": "ana", "citations": [], "tool_calls": [], "name": None, "created_at": "2026-01-01T00:00:00Z"}
    said: list[str] = []
    answers: list[dict] = []

    def sessions_api(route):
        request = route.request
        path = request.url.split("/v1/sessions", 1)[1]
        if request.method == "GET" and path == "":
            return route.fulfill(json={"object": "list", "data": [stored] if said else []})
        if request.method == "POST" and path == "":
            return route.fulfill(status=201, json={**stored, "mode": "assistant", "turns": 0})
        if request.method == "POST" and path == "/s1/messages":
            said.append(json.loads(request.post_data)["content"])
            events = first_turn_events() if len(said) == 1 else [{"type": "queued", "mode": "human", "seq": 3, "message": "..."}]
            return route.fulfill(headers={"Content-Type": "text/event-stream"}, body=sse(*events))
        if request.method == "POST" and path == "/s1/approvals/apr_1":
            answers.append(json.loads(request.post_data))
            return route.fulfill(json={"approval_id": "apr_1", "status": "approved"})
        if request.method == "GET" and path == "/s1":
            messages = [
                {**person, "seq": 1, "turn": 1, "role": "user", "content": said[0], "author": None},
                {**person, "seq": 2, "turn": 1, "content": "I have asked a colleague to take over.", "author": None},
                {**person, "seq": 3, "turn": 2, "role": "user", "content": said[1], "author": None},
                person,
            ]
            return route.fulfill(json={**stored, "messages": messages, "unanswered": []})
        return route.fulfill(status=404, json={"error": {"message": f"unexpected {request.method} {path}"}})

    agent, _ = echo_agent()
    with serve(create_app(settings, agent)) as running:  # no key exists: the page works without one on loopback
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        try:
            page.route(re.compile(r".*/v1/sessions(/.*)?$"), sessions_api)
            page.goto(running.url + "/")
            page.wait_for_function("sessions.kind === 'server'")
            assert page.locator("#handoff").is_hidden()

            page.fill("#prompt", "My lamp is broken, I want a person.")
            page.click("#send")
            answer = page.locator("#messages > li.assistant").nth(0)
            expect(answer.locator(".text")).to_have_text("I have asked a colleague to take over.")
            steps = answer.locator("details.steps")
            assert steps.get_attribute("open") is None  # collapsed until opened
            steps.locator("summary").click()
            expect(steps).to_contain_text("Plan: s1 support: My lamp is broken")
            expect(steps).to_contain_text('support → escalate_to_human({"summary": "Broken lamp, wants a person"})')
            expect(steps).to_contain_text("escalate_to_human: escalated")
            asked = answer.locator(".approval")
            expect(asked).to_contain_text('Opens a support ticket: create_ticket({"subject": "Broken lamp"})')
            asked.get_by_role("button", name="Allow").click()
            expect(asked.locator(".status")).to_have_text("approved")
            assert answers == [{"approve": True}]
            expect(page.locator("#handoff")).to_be_visible()
            expect(page.locator("#handoff")).to_contain_text("A person has taken over")

            page.fill("#prompt", "Thank you, I will wait.")
            page.click("#send")
            expect(page.locator("#messages > li.operator")).to_contain_text("I am Ana from the shop", timeout=15_000)
            assert page.locator("#messages > li.assistant").count() == 1  # the assistant stayed silent
            expect(page.locator("#handoff")).to_be_visible()
            page.screenshot(path=str(tmp_path / "handoff.png"), full_page=True)
        finally:
            page.close()
    print(f"screenshot: {tmp_path / 'handoff.png'}")
