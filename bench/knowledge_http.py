"""Knowledge over HTTP against the library itself, in the same run: what the server adds to a search and to an upload.

    python -m bench.knowledge_http [--files 20] [--queries 60]

1. Upload: the same generated Markdown files go into fresh tenants through `POST /v1/knowledge/documents`
   (one request) and through `KnowledgeLibrary.add` directly, in the order HTTP, library, library,
   HTTP (drift on a shared machine hits both alike); mean seconds of each.
2. Search: distinct queries through `POST /v1/knowledge/search` (a keep-alive client) and through
   `KnowledgeLibrary.search`, alternated query by query so that other load hits both alike;
   p50 of each, and `search_overhead_ms` (HTTP p50 - library p50). `GET /v1/models`, timed in the
   same loop, is the floor every request pays (HTTP, the key check, JSON), whatever it asks.

A real uvicorn server on a free port, the packaged MiniLM embedder, embedded Chroma.
Writes bench/results/knowledge_http.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/knowledge.py: spinning OpenMP threads starve Chroma's

import argparse  # noqa: E402
import asyncio  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from bench.common import print_table, summary, write_results  # noqa: E402
from bench.knowledge import WORDS, make_docs  # noqa: E402


def serve(app) -> tuple[str, uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", server, thread


async def operator_keys(keys_url: str, tenants: list[str]) -> list[str]:
    from llmos.server import KeyStore

    keys = KeyStore(keys_url)
    try:
        return [(await keys.create(t, role="operator")).secret for t in tenants]
    finally:
        await keys.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20, help="at most 20: one upload request holds 20 files")
    parser.add_argument("--queries", type=int, default=60)
    args = parser.parse_args()

    from llmos.agents import Agent
    from llmos.knowledge.library import KnowledgeLibrary
    from llmos.server import ServerSettings, create_app

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["LLMOS_HOME"] = str(root / "home")  # the query encoder's export, the keys database
        docs = root / "docs"
        make_docs(docs, args.files)
        files = sorted(docs.iterdir())
        library = KnowledgeLibrary(root / "knowledge")
        # Load the model, open Chroma and build a keyword index once before anything is timed.
        library.add("warmup", files[0].name, files[0].read_bytes())
        library.search("warmup", "warm up", 5)

        keys_url = f"sqlite+aiosqlite:///{root / 'keys.db'}"
        secrets = asyncio.run(operator_keys(keys_url, ["http-1", "http-2"]))
        settings = ServerSettings(keys_url=keys_url, rate_limit_per_minute=0)
        url, server, thread = serve(create_app(settings, Agent("idle", model="unused"), knowledge=library))
        try:
            with httpx.Client(base_url=url, timeout=600) as client:

                def over_http(secret: str) -> float:
                    started = time.perf_counter()
                    r = client.post(
                        "/v1/knowledge/documents", headers={"Authorization": f"Bearer {secret}"},
                        files=[("files", (f.name, f.read_bytes())) for f in files],
                    )
                    r.raise_for_status()
                    return time.perf_counter() - started

                def directly(tenant: str) -> float:
                    started = time.perf_counter()
                    for f in files:
                        library.add(tenant, f.name, f.read_bytes())
                    return time.perf_counter() - started

                http_1, direct_1, direct_2, http_2 = over_http(secrets[0]), directly("direct-1"), directly("direct-2"), over_http(secrets[1])
                upload_http, upload_direct = (http_1 + http_2) / 2, (direct_1 + direct_2) / 2
                search_headers = {"Authorization": f"Bearer {secrets[0]}"}

                rng = random.Random(1)
                queries = [" ".join(rng.choice(WORDS) for _ in range(5)) for _ in range(args.queries)]
                http, direct, floor = [], [], []
                for q in queries:
                    started = time.perf_counter()
                    client.get("/v1/models", headers=search_headers).raise_for_status()
                    floor.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    client.post("/v1/knowledge/search", json={"query": q, "k": 5}, headers=search_headers).raise_for_status()
                    http.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    library.search("direct-1", q, 5)
                    direct.append(time.perf_counter() - started)
        finally:
            server.should_exit = True
            thread.join(timeout=15)

    chunks = library.status("direct-1").chunks
    http_s, direct_s, floor_s = summary(http), summary(direct), summary(floor)
    overhead = http_s["median_ms"] - direct_s["median_ms"]
    print_table(
        f"Knowledge over HTTP vs the library ({args.files} files, {chunks} chunks, {args.queries} queries)",
        ["", "HTTP", "library", "HTTP - library"],
        [
            ["upload, s", upload_http, upload_direct, upload_http - upload_direct],
            ["search p50, ms", http_s["median_ms"], direct_s["median_ms"], overhead],
            ["search p90, ms", http_s["p90_ms"], direct_s["p90_ms"], http_s["p90_ms"] - direct_s["p90_ms"]],
            ["GET /v1/models p50, ms (floor)", floor_s["median_ms"], "", ""],
        ],
    )
    data = {
        "files": args.files,
        "chunks": chunks,
        "upload_http_s": upload_http,
        "upload_library_s": upload_direct,
        "upload_runs_s": {"http": [http_1, http_2], "library": [direct_1, direct_2]},
        "search_http": http_s,
        "search_library": direct_s,
        "search_overhead_ms": overhead,
        "request_floor": floor_s,
    }
    print(f"wrote {write_results('knowledge_http', data)}")


if __name__ == "__main__":
    main()
