"""The web chat in real headless Chromium (Debian's package, driven by Playwright; `make chromium` installs it).

A real server on a free port serves a team whose support specialist searches the tenant's
uploaded documents (a real knowledge base); the scripted model decides when to search and
what to say. In the browser: keys typed in, a message sent, the answer seen arriving piece
by piece with its sources, a source opened to its passage, a file uploaded, and an answer
that cites it. Screenshots are saved under the test's tmp folder.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from llmos.server.webchat import ASSETS, STATIC
from tests.server.conftest import create_app, make_key, serve
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
    from tests.server.conftest import echo_agent

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

            # 1. A question: the answer streams in, then lists its source; the source opens its passage.
            page.evaluate(WATCH_STREAM)
            page.fill("#prompt", "My lamp arrived broken. What now?")
            page.click("#send")
            first = page.locator("#messages > li.assistant").nth(0)
            first.locator(".sources").wait_for()
            seen = page.evaluate("window.seen")
            assert len(seen) >= 5 and all(b.startswith(a) for a, b in zip(seen, seen[1:])), seen
            assert "replaced free of charge [1]" in first.locator(".text").inner_text()
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
            assert page.locator("#sessions li").count() == 1
            page.click("#new-session")
            assert page.locator("#messages > li").count() == 0
            page.click("#sessions li button.open")
            assert page.locator("#messages > li").count() == 4
            assert page.locator("#messages .sources a.source").all_inner_texts() == [
                "[1] returns.md, Returns > Damaged items",
                "[1] warranty.md, Warranty > Batteries",
            ]
            page.screenshot(path=str(shots / "3-session-reopened.png"), full_page=True)
        finally:
            page.close()
    for shot in sorted(shots.iterdir()):
        print(f"screenshot: {shot}")
    assert [s.name for s in sorted(shots.iterdir())] == [
        "1-answer-with-source.png", "2-answer-citing-upload.png", "3-session-reopened.png",
    ]
