"""Knowledge bases on a real Chroma server (`chroma run`), chosen by the LLMOS_KB_CHROMA_URL setting.

Past one machine, the vectors and texts live in a Chroma server that every replica reaches:
ingest and search go through it, two tenants stay apart on it, another replica (another
folder) finds what was ingested, and the data outlives a restart of the server.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import chromadb
import httpx
import pytest
from chromadb.config import Settings

from llmos.knowledge import KnowledgeBase, open_tenants

pytestmark = pytest.mark.chroma_server


def chroma_command() -> str:
    """chromadb's CLI, next to this Python (the virtual environment's), else on PATH."""
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.exists() else shutil.which("chroma")
    assert found, "The `chroma` command (chromadb's CLI) is missing: install llmos with its extra, pip install 'llmos[knowledge]'."
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def chroma_run(data: Path, log: Path) -> Iterator[str]:
    """`chroma run` on a free port with its data in `data`; its URL once the heartbeat answers. Stopped by its PID."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [chroma_command(), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a safety net on a busy machine; it answers in seconds
        while True:
            assert process.poll() is None, f"chroma run exited with {process.returncode}:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"chroma run did not answer its heartbeat:\n{log.read_text()[-2000:]}"
            try:
                if httpx.get(url + "/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def server_collections(url: str) -> dict[str, int]:
    """What the server itself holds: collection name -> number of records."""
    parts = urlparse(url)
    client = chromadb.HttpClient(host=parts.hostname, port=parts.port, settings=Settings(anonymized_telemetry=False))
    return {c.name: client.get_collection(c.name).count() for c in client.list_collections()}


def test_ingest_search_and_tenants_on_a_chroma_server(tmp_path, monkeypatch, minilm):
    acme, globex = tmp_path / "acme-docs", tmp_path / "globex-docs"
    acme.mkdir()
    globex.mkdir()
    (acme / "refunds.md").write_text("# Refunds\n\nAcme refunds any order within 14 days of delivery.")
    (acme / "shipping.md").write_text("# Shipping\n\nAcme ships parcels with DHL; delivery takes two to four days.")
    (globex / "refunds.md").write_text("# Refunds\n\nGlobex refunds unopened items within 30 days, opened ones never.")
    data, log = tmp_path / "chroma-data", tmp_path / "chroma.log"

    with chroma_run(data, log) as url:
        monkeypatch.setenv("LLMOS_KB_CHROMA_URL", url)  # the setting, as a deployment sets it
        kbs = open_tenants(tmp_path / "kb", ["acme", "globex"], embedder=minilm)
        assert kbs["acme"].url == url
        assert len(kbs["acme"].ingest(acme).added) == 2
        assert len(kbs["globex"].ingest(globex).added) == 1

        # The vectors are on the server, one collection per tenant; nothing went to an embedded store.
        assert server_collections(url) == {"llmos_acme": 2, "llmos_globex": 1}
        assert not (tmp_path / "kb" / "chroma").exists()

        for mode in ("hybrid", "dense", "bm25"):
            hits = kbs["acme"].search("How many days do I have to get my money back?", k=5, mode=mode)
            assert hits and hits[0].source == str((acme / "refunds.md").resolve()), mode
            assert all(Path(h.source).parent == acme.resolve() for h in hits), mode  # never Globex's policy
            hits = kbs["globex"].search("Globex refunds within 30 days", k=5, mode=mode)
            assert [Path(h.source).parent for h in hits] == [globex.resolve()], mode

        # Another replica (its own folder, the same server) finds what the first ingested.
        replica = KnowledgeBase(tmp_path / "replica-kb", tenant="acme", embedder=minilm)
        assert replica.stats().chunks == 2
        assert replica.search("Which carrier delivers the parcels?", k=1)[0].source == str((acme / "shipping.md").resolve())

    # The server's data outlives it: started again on the same --path, the same answers.
    with chroma_run(data, log) as url:
        again = KnowledgeBase(tmp_path / "kb", tenant="globex", embedder=minilm, url=url)
        assert again.stats().chunks == 1
        assert "30 days" in again.search("refund period", k=1, mode="dense")[0].text
