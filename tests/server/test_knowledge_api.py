"""Knowledge over HTTP, on a real server: each tenant's documents, limits, bad files, deletion, and answers citing them."""

from __future__ import annotations

import httpx
import pytest

from tests.server.conftest import create_app, echo_agent, make_key, serve
from tests.server.knowledge_fixtures import (  # noqa: F401 - fixtures
    RETURNS,
    WARRANTY,
    embedder,
    knowledge_team,
    library,
    search_then_cite,
)

KB = "/v1/knowledge"


def client(running, secret: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.Client(base_url=running.url, headers=headers, timeout=60)


def upload(c: httpx.Client, *files: tuple[str, bytes]) -> httpx.Response:
    return c.post(KB + "/documents", files=[("files", (name, data)) for name, data in files])


def error(r: httpx.Response) -> dict:
    return r.json()["error"]


@pytest.fixture
def two_tenants(settings, keys_url, library):
    """A running server and an operator and a customer key for each of two tenants."""
    keys = {
        (tenant, role): make_key(keys_url, tenant, role=role)
        for tenant in ("acme", "globex")
        for role in ("operator", "customer")
    }
    agent, _ = echo_agent()
    with serve(create_app(settings, agent, knowledge=library)) as running:
        yield running, keys


def test_a_tenant_uploads_lists_searches_and_opens_the_cited_passage(two_tenants):
    running, keys = two_tenants
    with client(running, keys["acme", "operator"]) as staff, client(running, keys["acme", "customer"]) as customer:
        r = upload(staff, ("returns.md", RETURNS.encode()))
        assert r.status_code == 201, r.text
        (doc,) = r.json()["documents"]
        assert doc["name"] == "returns.md" and doc["state"] == "indexed" and doc["chunks"] >= 2

        assert [d["id"] for d in customer.get(KB + "/documents").json()["data"]] == [doc["id"]]
        assert customer.get(f"{KB}/documents/{doc['id']}").json()["bytes"] == len(RETURNS.encode())

        hits = customer.post(KB + "/search", json={"query": "my lamp arrived broken", "k": 1}).json()["data"]
        assert hits[0]["document"] == "returns.md" and "replaced free of charge" in hits[0]["text"]
        assert hits[0]["citation"] == "returns.md, Returns > Damaged items"
        assert "/" not in hits[0]["document"]  # the server's folders are not shown

        cited = customer.get(KB + "/passages", params={"citation": hits[0]["citation"]}).json()
        assert cited["document"]["id"] == doc["id"]
        assert [p["text"] for p in cited["passages"]] == [hits[0]["text"]]

        status = customer.get(KB + "/status").json()
        assert status["documents"] == status["indexed"] == 1 and status["chunks"] == doc["chunks"]
        assert status["pending"] == status["not_indexed"] == []


def test_another_tenants_documents_are_invisible_on_every_endpoint(two_tenants):
    running, keys = two_tenants
    with client(running, keys["acme", "operator"]) as acme, client(running, keys["globex", "operator"]) as globex:
        acme_doc = upload(acme, ("returns.md", RETURNS.encode())).json()["documents"][0]
        globex_doc = upload(globex, ("warranty.md", WARRANTY.encode())).json()["documents"][0]
        assert acme_doc["id"] != globex_doc["id"]

        assert [d["name"] for d in globex.get(KB + "/documents").json()["data"]] == ["warranty.md"]
        for method, path in [
            ("GET", f"{KB}/documents/{acme_doc['id']}"),
            ("GET", f"{KB}/documents/{acme_doc['id']}/passages"),
            ("DELETE", f"{KB}/documents/{acme_doc['id']}"),
        ]:
            r = globex.request(method, path)
            assert r.status_code == 404 and error(r)["code"] == "not_found", (method, path)
        r = globex.get(KB + "/passages", params={"citation": "returns.md, Returns > Damaged items"})
        assert r.status_code == 404
        hits = globex.post(KB + "/search", json={"query": "lamp arrived damaged, replaced free of charge"}).json()["data"]
        assert hits and {h["document"] for h in hits} == {"warranty.md"}
        assert globex.get(KB + "/status").json()["documents"] == 1
        assert globex.post(KB + "/sync").json()["removed"] == []

        # The same file name in two tenants is two documents: globex's upload leaves acme's alone.
        upload(globex, ("returns.md", b"# Returns\nNo returns at globex."))
        assert acme.get(f"{KB}/documents/{acme_doc['id']}").json()["bytes"] == len(RETURNS.encode())
        damaged = acme.post(KB + "/search", json={"query": "damaged lamp", "k": 5}).json()["data"]
        assert all("globex" not in h["text"] for h in damaged)
        assert acme.get(KB + "/status").json()["documents"] == 1


def test_limits_types_and_malformed_uploads_are_refused_with_nothing_stored(settings, keys_url, library):
    settings = settings.model_copy(update={"upload_max_bytes": 2_000})
    secret = make_key(keys_url, "acme", role="operator")
    agent, _ = echo_agent()
    with serve(create_app(settings, agent, knowledge=library)) as running, client(running, secret) as c:
        r = upload(c, ("returns.md", RETURNS.encode()), ("big.md", b"# Big\n" + b"word " * 1_000))
        assert r.status_code == 413 and error(r)["code"] == "file_too_large" and "big.md" in error(r)["message"]

        r = upload(c, ("returns.md", RETURNS.encode()), ("setup.exe", b"MZ\x90\x00"))
        assert r.status_code == 415 and ".exe files are not accepted" in error(r)["message"]
        assert ".md" in error(r)["message"]  # says what is accepted
        r = upload(c, ("README", b"plain words"))
        assert r.status_code == 415 and "without an extension" in error(r)["message"]
        r = upload(c, ("../", b"plain words"))
        assert r.status_code == 400 and error(r)["code"] == "invalid_file_name"

        r = c.post(KB + "/documents", json={"files": "returns.md"})
        assert r.status_code == 415 and "multipart/form-data" in error(r)["message"]

        r = c.post(KB + "/documents", content=b"--x\r\nnot a part", headers={"Content-Type": "multipart/form-data"})
        assert r.status_code == 400 and error(r)["code"] == "invalid_multipart"

        r = c.post(KB + "/documents", data={"note": "no file here"}, files=[("other", ("a.txt", b"x"))])
        assert r.status_code == 400 and error(r)["code"] == "no_files"

        # A body far past what MAX_FILES files may add up to is cut off while it streams in (chunked, no length).
        r = c.post(KB + "/documents", content=iter([b"x" * 65_536] * 20), headers={
            "Content-Type": "multipart/form-data; boundary=x"})
        assert r.status_code == 413 and error(r)["code"] == "body_too_large"

        r = c.post(KB + "/search", json={"query": ""})
        assert r.status_code == 400 and error(r)["param"] == "query"
        r = c.post(KB + "/search", content=b"{not json")
        assert r.status_code == 400

        assert c.get(KB + "/documents").json()["data"] == []


def test_a_bad_document_is_reported_and_never_takes_the_others_down(two_tenants):
    running, keys = two_tenants
    with client(running, keys["acme", "operator"]) as c:
        r = upload(c, ("returns.md", RETURNS.encode()), ("scan.txt", b"\x00\x01binary\x00"), ("empty.md", b"   \n"))
        assert r.status_code == 201
        assert [d["name"] for d in r.json()["documents"]] == ["returns.md"]
        reasons = {f["name"]: f["reason"] for f in r.json()["failed"]}
        assert set(reasons) == {"scan.txt", "empty.md"} and "binary data" in reasons["scan.txt"]
        assert "no text" in reasons["empty.md"]

        # A name is only a name: a path in it never leads out of the tenant's folder.
        r = upload(c, ("../../outside.md", b"# Outside\nNothing to see."))
        assert r.status_code == 201 and r.json()["documents"][0]["name"] == "outside.md"
        assert c.delete(f"{KB}/documents/{r.json()['documents'][0]['id']}").status_code == 200

        # A single unreadable file: 400, and it is not kept.
        r = upload(c, ("notes.json", b'{"unclosed": '))
        assert r.status_code == 400 and error(r)["code"] == "unreadable_document" and "notes.json" in error(r)["message"]

        # A bad new version of a good document keeps the good one.
        r = upload(c, ("returns.md", b"\x00\x00"))
        assert r.status_code == 400
        assert [d["name"] for d in c.get(KB + "/documents").json()["data"]] == ["returns.md"]
        hits = c.post(KB + "/search", json={"query": "refund to my card"}).json()["data"]
        assert any("5 business days" in h["text"] for h in hits)


def test_deleting_a_document_removes_its_passages(two_tenants):
    running, keys = two_tenants
    with client(running, keys["acme", "operator"]) as c:
        returns, warranty = upload(c, ("returns.md", RETURNS.encode()), ("warranty.md", WARRANTY.encode())).json()["documents"]
        r = c.delete(f"{KB}/documents/{returns['id']}")
        assert r.status_code == 200 and r.json()["deleted"] is True
        assert [d["name"] for d in c.get(KB + "/documents").json()["data"]] == ["warranty.md"]
        hits = c.post(KB + "/search", json={"query": "damaged lamp replaced", "k": 5}).json()["data"]
        assert {h["document"] for h in hits} == {"warranty.md"}
        assert c.get(KB + "/status").json()["chunks"] == warranty["chunks"]
        assert c.delete(f"{KB}/documents/{returns['id']}").status_code == 404


def test_changing_documents_needs_an_operator_key_when_keys_are_on(two_tenants):
    running, keys = two_tenants
    with client(running, keys["acme", "customer"]) as customer:
        r = upload(customer, ("returns.md", RETURNS.encode()))
        assert r.status_code == 403 and error(r)["code"] == "wrong_key_role"
        assert customer.post(KB + "/sync").status_code == 403
        assert customer.get(KB + "/documents").status_code == 200
    with client(running) as anonymous:
        assert anonymous.get(KB + "/documents").status_code == 401


def test_without_keys_a_loopback_client_manages_the_open_tenants_documents(settings, library):
    agent, _ = echo_agent()
    with serve(create_app(settings, agent, knowledge=library)) as running, client(running) as c:
        assert upload(c, ("returns.md", RETURNS.encode())).status_code == 201
        assert c.get(KB + "/status").json()["tenant"] == settings.open_tenant


def test_the_served_team_answers_each_tenant_from_its_own_documents(settings, keys_url, library):
    acme_ops, acme = make_key(keys_url, "acme", role="operator"), make_key(keys_url, "acme")
    globex = make_key(keys_url, "globex")
    question = "My lamp arrived broken. What now?"
    team, model = knowledge_team(library, [
        *search_then_cite("damaged lamp", "It is replaced free of charge [1]."),
        *search_then_cite("damaged lamp", "I found nothing about that."),
    ])
    with serve(create_app(settings, team, knowledge=library)) as running:
        with client(running, acme_ops) as c:
            upload(c, ("returns.md", RETURNS.encode()))

        def ask(secret: str) -> str:
            with client(running, secret) as c:
                r = c.post("/v1/chat/completions", json={"model": "shop", "messages": [{"role": "user", "content": question}]})
            assert r.status_code == 200, r.text
            return r.json()["choices"][0]["message"]["content"]

        answer = ask(acme)
        assert "replaced free of charge [1]" in answer and "[1] returns.md, Returns > Damaged items" in answer
        assert "Sources:" not in ask(globex)  # globex uploaded nothing: no acme passage reaches its run
    globex_results = [m.content for m in model.requests[-1].messages if m.role == "tool"]
    assert globex_results and "No passages found" in globex_results[0]


def test_the_search_tool_takes_the_tenant_from_the_run_never_from_the_model(library):
    tool = library.as_tool()
    assert set(tool.spec.parameters["properties"]) == {"query", "k"}


SHOP = """
name = "Lamp shop"

[knowledge.docs]
uploads = true

[[specialists]]
name = "support"
kind = "custom"
description = "Answers from the company's documents, with citations."
instructions = "Call search_policies and cite the passages like [1]."
knowledge = "docs"
"""


def test_an_assistant_file_with_an_uploads_source_answers_from_the_callers_uploads(tmp_path, keys_url, embedder, monkeypatch):
    """`llmos serve shop.toml`: the file's specialist searches what the key's tenant uploaded over HTTP."""
    from llmos.assistants import load_assistant
    from llmos.config import get_settings
    from llmos.server import ServerSettings
    from tests.scripted import ScriptedModel

    monkeypatch.setenv("LLMOS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LLMOS_SERVER_KNOWLEDGE_PATH", str(tmp_path / "uploads"))
    get_settings.cache_clear()
    (tmp_path / "shop.toml").write_text(SHOP)
    model = ScriptedModel(search_then_cite("damaged lamp", "It is replaced free of charge [1]."))
    assistant = load_assistant(tmp_path / "shop.toml", model, home=tmp_path / "home", embedder=embedder)
    operator, customer = make_key(keys_url, "acme", role="operator"), make_key(keys_url, "acme")
    settings = ServerSettings(keys_url=keys_url, rate_limit_per_minute=0)
    with serve(create_app(settings, {"shop": assistant.team})) as running:
        with client(running, operator) as c:
            assert upload(c, ("returns.md", RETURNS.encode())).status_code == 201
        with client(running, customer) as c:
            r = c.post("/v1/chat/completions", json={"model": "shop", "messages": [{"role": "user", "content": "Broken lamp?"}]})
    answer = r.json()["choices"][0]["message"]["content"]
    assert "[1] returns.md, Returns > Damaged items" in answer
    assert (tmp_path / "uploads" / "files").is_dir()  # the server's knowledge location, as the setting says
    get_settings.cache_clear()


def test_a_knowledge_base_that_cannot_open_answers_503_and_says_why(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOS_KB_EMBEDDING_MODEL", str(tmp_path / "no-such-model"))
    settings = settings.model_copy(update={"knowledge_path": tmp_path / "uploads"})
    agent, _ = echo_agent()
    with serve(create_app(settings, agent)) as running, client(running) as c:
        r = upload(c, ("returns.md", RETURNS.encode()))
        assert r.status_code == 503 and error(r)["code"] == "knowledge_unavailable"
        assert "no-such-model" in error(r)["message"]
        assert c.get("/healthz").status_code == 200  # the rest of the server goes on
