"""The web chat in real headless Chromium (Debian's package, driven by Playwright; `make chromium` installs it).

A real server on a free port serves a team whose support specialist searches the tenant's
uploaded documents (a real knowledge base); the scripted model decides when to search and
what to say. In the browser: keys typed in, a message sent, the answer seen arriving piece
by piece with its sources, a source opened to its passage, a file uploaded, and an answer
that cites it; then a tool call the customer allows, a person taking over (the banner) and
replying, and the hand-back. Screenshots are saved under the test's tmp folder.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from llmos.agents import Agent, Team
from llmos.llm import ToolCall
from llmos.tools import tool
from tests.scripted import ScriptedModel
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
            steps = first.locator("details.steps")  # the search, collapsed under the answer
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


# --- approvals and the hand-off, through the sessions API ---------------------------------------------

tickets: list[str] = []


@tool(requires_approval=True)
def create_ticket(subject: str) -> str:
    """Open a support ticket.

    Args:
        subject: What the ticket is about.
    """
    tickets.append(subject)
    return "ticket T-1 opened"


def test_a_tool_call_the_customer_allows_then_a_person_takes_over_and_replies(browser, settings, keys_url, tmp_path):
    with ThreadPoolExecutor(1) as thread:
        customer = thread.submit(make_key, keys_url, "acme").result()
        operator = thread.submit(make_key, keys_url, "acme", role="operator").result()
    model = ScriptedModel(
        [json.dumps({"route": "support"}), ToolCall.make("create_ticket", {"subject": "Broken lamp"}),
         lambda r: "Done: " + r.messages[-1].content],
        piece_delay=0.02,
    )
    team = Team([Agent("support", description="Tickets.", tools=[create_ticket], model=model)], model=model, name="shop")
    staff = {"Authorization": f"Bearer {operator}"}
    from playwright.sync_api import expect

    with serve(create_app(settings, team)) as running:
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        try:
            page.goto(running.url + "/")
            page.fill("#api-key", customer)
            page.dispatch_event("#api-key", "change")
            page.wait_for_selector("#model option[value=shop]", state="attached")
            assert page.locator("#handoff").is_hidden()

            # The tool call waits for the customer: Allow runs it, and the answer goes on.
            page.fill("#prompt", "Open a ticket about my broken lamp")
            page.click("#send")
            asked = page.locator("#messages > li.assistant .approval")
            expect(asked).to_contain_text('create_ticket({"subject": "Broken lamp"})')
            asked.get_by_role("button", name="Allow").click()
            answer = page.locator("#messages > li.assistant").nth(0)
            expect(answer.locator(".text")).to_have_text("Done: ticket T-1 opened")
            assert tickets == ["Broken lamp"]
            expect(asked.locator(".status")).to_have_text("approved")

            # The plan and the tool call, collapsed under the answer.
            steps = answer.locator("details.steps")
            assert steps.get_attribute("open") is None
            steps.locator("summary").click()
            expect(steps).to_contain_text("Plan: s1 support: Open a ticket about my broken lamp")
            expect(steps).to_contain_text('support → create_ticket({"subject": "Broken lamp"})')
            expect(steps).to_contain_text("create_ticket: ticket T-1 opened")

            # A person takes over: the next message is queued for them, the banner shows, their reply appears.
            (session,) = httpx.get(running.v1 + "/sessions", headers={"Authorization": f"Bearer {customer}"}).json()["data"]
            r = httpx.post(f"{running.v1}/operator/sessions/{session['id']}/takeover", headers=staff, json={})
            assert r.status_code == 200
            page.fill("#prompt", "Hello? Is anyone there?")
            page.click("#send")
            expect(page.locator("#handoff")).to_be_visible()
            expect(page.locator("#handoff")).to_contain_text("A person has taken over")
            r = httpx.post(f"{running.v1}/operator/sessions/{session['id']}/messages", headers=staff,
                           json={"content": "Hello, I am Ana from the shop. A new lamp is on its way."})
            assert r.status_code == 201
            expect(page.locator("#messages > li.operator")).to_contain_text("I am Ana from the shop", timeout=15_000)
            expect(page.locator("#messages > li.assistant")).to_have_count(1)  # the assistant stayed silent
            page.screenshot(path=str(tmp_path / "handoff.png"), full_page=True)

            # Handed back: the banner goes.
            assert httpx.post(f"{running.v1}/operator/sessions/{session['id']}/handback", headers=staff, json={}).status_code == 200
            page.click("#sessions li button.open")
            expect(page.locator("#handoff")).to_be_hidden()
        finally:
            page.close()
    print(f"screenshot: {tmp_path / 'handoff.png'}")
