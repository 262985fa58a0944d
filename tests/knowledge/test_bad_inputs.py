"""Bad files are reported and skipped; everything else is ingested."""

from __future__ import annotations

import io
import os

import pypdf

from llmos.knowledge import KnowledgeBase

from .conftest import minimal_pdf


def test_bad_inputs_are_skipped_and_reported(tmp_path, hash_embedder):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "good.md").write_text("# Good\n\nThis file is fine.")
    (docs / "good.pdf").write_bytes(minimal_pdf(["A fine PDF page"]))
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage")
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(minimal_pdf(["secret"]))))
    writer.encrypt(user_password="pw", algorithm="RC4-128")
    writer.write(docs / "locked.pdf")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (docs / "empty.md").write_text("")
    (docs / "huge.txt").write_text("big " * 100_000)  # 400 kB, over the cap set below
    os.symlink(docs / "sub", docs / "sub" / "loop")  # a folder linking to itself
    os.symlink("self", docs / "self")  # a link to itself: ELOOP
    outside = tmp_path / "secret.txt"
    outside.write_text("Not for the knowledge base.")
    os.symlink(outside, docs / "escape.txt")
    (docs / "sub" / "nested.txt").write_text("Nested but fine.")

    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.settings.max_file_mb = 0.1
    summary = kb.ingest(docs)

    reasons = {os.path.basename(s.path): s.reason for s in summary.skipped}
    assert "corrupt" in reasons["corrupt.pdf"]
    assert "encrypted" in reasons["locked.pdf"]
    assert "binary" in reasons["binary.txt"]
    assert "empty" in reasons["empty.md"]
    assert "limit" in reasons["huge.txt"]
    assert "loop" in reasons["loop"] and "loop" in reasons["self"]
    assert "outside the root" in reasons["escape.txt"]
    assert sorted(os.path.basename(p) for p in summary.added) == ["good.md", "good.pdf", "nested.txt"]
    assert all("Not for the knowledge base" not in h.text for h in kb.search("knowledge base", k=10))


def test_a_file_that_turns_bad_keeps_its_last_good_chunks(tmp_path, hash_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("Useful notes.")
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.ingest(docs)
    (docs / "notes.txt").write_bytes(b"\x00\x01\x02 broken")
    summary = kb.ingest(docs)
    assert [os.path.basename(s.path) for s in summary.skipped] == ["notes.txt"]
    assert kb.search("useful notes", k=1)[0].text == "Useful notes."


def test_missing_path_is_a_clear_error(tmp_path, hash_embedder):
    import pytest

    from llmos.errors import LoaderError

    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    with pytest.raises(LoaderError, match="does not exist"):
        kb.ingest(tmp_path / "nope")


def test_a_file_that_breaks_its_parser_is_skipped_and_the_rest_go_in(tmp_path, hash_embedder):
    """Deep JSON (RecursionError) and a CSV field over csv's limit (_csv.Error) once aborted the whole run."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (docs / "wide.csv").write_text("name,notes\nx," + "y" * 200_000 + "\n")
    (docs / "good.md").write_text("# Returns\n\nTents can be returned within 30 days.")
    (docs / "good.txt").write_text("Shipping takes three days.")

    summary = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder).ingest(docs)

    assert sorted(os.path.basename(p) for p in summary.added) == ["good.md", "good.txt"], summary
    reasons = {os.path.basename(s.path): s.reason for s in summary.skipped}
    assert set(reasons) == {"deep.json", "wide.csv"}, reasons


def test_a_knowledge_base_of_only_wordless_files_still_ingests_and_searches(tmp_path, hash_embedder):
    """A file of only '#' gave bm25s an empty vocabulary (ValueError) and stopped the ingestion."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hashes.txt").write_text("#" * 40)
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    assert [os.path.basename(p) for p in kb.ingest(docs).added] == ["hashes.txt"]
    assert kb.search("tents", k=3, mode="bm25") == []
    (docs / "tents.txt").write_text("Tents can be returned within 30 days.")
    kb.ingest(docs)
    reopened = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    assert reopened.search("tents returned", k=1, mode="bm25")[0].source.endswith("tents.txt")


# --- hostile files: each of these once aborted, hung or flooded an ingestion ------------------------


def _ingest_within(kb, folder, seconds: float = 60.0):
    """Ingest in a thread: a run that blocks (on a FIFO) fails the test instead of hanging it."""
    import threading

    result = {}
    thread = threading.Thread(target=lambda: result.update(summary=kb.ingest(folder)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"ingestion still running after {seconds} s"
    return result["summary"]


def _reasons(summary) -> dict[str, str]:
    return {os.path.basename(s.path): s.reason for s in summary.skipped}


def test_a_fifo_or_socket_is_reported_and_never_blocks(tmp_path, hash_embedder):
    import socket

    docs = tmp_path / "docs"
    docs.mkdir()
    os.mkfifo(docs / "pipe.md")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(docs / "socket.txt"))
    sock.close()
    (docs / "good.txt").write_text("Shipping takes three days.")

    summary = _ingest_within(KnowledgeBase(tmp_path / "kb", embedder=hash_embedder), docs)

    assert [os.path.basename(p) for p in summary.added] == ["good.txt"]
    reasons = _reasons(summary)
    assert "not a regular file" in reasons["pipe.md"] and "not a regular file" in reasons["socket.txt"]


def test_a_file_replaced_by_a_fifo_after_listing_is_refused_without_blocking(tmp_path):
    """open() of a FIFO blocks until a writer comes: the reader opens without blocking and checks what it got."""
    import threading

    import pytest

    from llmos.errors import LoaderError
    from llmos.knowledge.sync import read_regular_file

    os.mkfifo(tmp_path / "pipe.md")
    outcome = {}

    def read() -> None:
        with pytest.raises(LoaderError, match="not a regular file") as caught:
            read_regular_file(tmp_path / "pipe.md", 1000)
        outcome["error"] = caught.value

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # let the blocked open() return, then fail
        os.close(os.open(tmp_path / "pipe.md", os.O_WRONLY | os.O_NONBLOCK))
        raise AssertionError("reading a FIFO blocked")
    assert "error" in outcome


def test_a_file_that_grows_past_the_limit_while_read_is_refused(tmp_path):
    import pytest

    from llmos.errors import LoaderError
    from llmos.knowledge.sync import read_regular_file

    (tmp_path / "big.txt").write_text("x" * 2000)
    assert read_regular_file(tmp_path / "big.txt", 5000) == b"x" * 2000
    with pytest.raises(LoaderError, match="limit"):
        read_regular_file(tmp_path / "big.txt", 1000)


def test_an_unreadable_file_is_skipped_with_its_reason(tmp_path, hash_embedder, monkeypatch):
    """chmod 000 does not stop root (tests may run as root), so the permission error is raised here."""
    import llmos.knowledge.sync as sync

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "locked.md").write_text("Locked away.")
    (docs / "good.txt").write_text("Shipping takes three days.")
    real_open = os.open

    def open_denying_locked(path, flags, *args, **kwargs):
        if os.path.basename(path) == "locked.md":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(sync.os, "open", open_denying_locked)
    summary = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder).ingest(docs)
    assert [os.path.basename(p) for p in summary.added] == ["good.txt"]
    assert _reasons(summary)["locked.md"] == "cannot read: Permission denied"


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_go_in(tmp_path, hash_embedder):
    """Chroma and SQLite refused the name's lone surrogates, which aborted the batch and the run."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / os.fsdecode(b"caf\xe9.md")).write_text("A file whose name is Latin-1.")
    (docs / "good.txt").write_text("Shipping takes three days.")

    summary = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder).ingest(docs)

    assert [os.path.basename(p) for p in summary.added] == ["good.txt"]
    assert [(s.path.rsplit("/", 1)[-1], s.reason) for s in summary.skipped] == [
        ("caf\\xe9.md", "file name is not valid UTF-8; rename the file")
    ]
    summary.model_dump_json()  # the report itself must be printable


def test_lone_surrogates_escaped_in_json_are_replaced_not_fatal(tmp_path, hash_embedder):
    """A JSON '\\ud800' escape gave text that Chroma could not encode as UTF-8: the whole run aborted. NULs go too."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "s.json").write_bytes(b'{"text": "broken \\ud800 pair"}')
    (docs / "s.jsonl").write_bytes(b'"half \\udc00 done\\u0000"\n')
    (docs / "good.txt").write_text("Shipping takes three days.")
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)

    summary = kb.ingest(docs)

    assert sorted(os.path.basename(p) for p in summary.added) == ["good.txt", "s.json", "s.jsonl"]
    assert {text for _, text, _ in kb.store.iter_all()} == {"text: broken ? pair", "half ? done", "Shipping takes three days."}


def test_text_in_utf16_with_a_bom_is_read_and_nul_bytes_anywhere_are_refused(tmp_path, hash_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "utf16.txt").write_bytes("Kayak rental closes at dusk.".encode("utf-16"))
    (docs / "late_nul.txt").write_bytes(b"words " * 5000 + b"\x00")  # past the first 8 kB
    (docs / "nul.csv").write_bytes(b"a,b\n" + b"1,2\n" * 3000 + b"3,\x004\n")
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)

    summary = kb.ingest(docs)

    assert [os.path.basename(p) for p in summary.added] == ["utf16.txt"]
    assert kb.search("kayak rental", k=1)[0].text == "Kayak rental closes at dusk."
    assert all("NUL" in reason for reason in _reasons(summary).values()) and len(summary.skipped) == 2


def test_a_docx_zip_bomb_is_refused_before_it_is_unzipped(tmp_path, hash_embedder):
    import time
    import zipfile

    bomb = tmp_path / "docs" / "bomb.docx"
    bomb.parent.mkdir()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w", force_zip64=True) as entry:
            for _ in range(300):
                entry.write(b" " * 1_000_000)  # 300 MB unzipped, 300 kB zipped
    assert bomb.stat().st_size < 1_000_000

    started = time.perf_counter()
    summary = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder).ingest(bomb.parent)

    assert "zip bomb" in _reasons(summary)["bomb.docx"]
    assert time.perf_counter() - started < 20  # unzipping and parsing 300 MB took far longer


def test_a_markdown_heading_of_many_spaces_parses_in_linear_time():
    """The heading regex backtracked: 2,000 spaces took 68 s, 20,000 would take hours."""
    import time

    from llmos.knowledge.loaders import markdown_sections

    started = time.perf_counter()
    sections = markdown_sections("# Tents" + " " * 20_000 + "##\n\nbody\n## Stoves ##\n\ntext\n### C#\n\nmore")
    assert time.perf_counter() - started < 1.0
    assert [s.location.heading for s in sections] == ["Tents", "Tents > Stoves", "Tents > Stoves > C#"]


def test_huge_headings_and_csv_column_names_do_not_multiply_into_every_chunk(tmp_path, hash_embedder):
    """Each chunk repeats its heading path, each CSV row its column names: a 1 MB heading once made 28 GB."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "heading.md").write_text("# " + "word " * 200_000 + "\n\n" + "".join(f"Body text {i}. " for i in range(2_000)))
    (docs / "header.csv").write_text("h" * 100_000 + ",b\n" + "".join(f"{i},{i}\n" for i in range(200)))
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)

    summary = kb.ingest(docs)

    assert len(summary.added) == 2 and summary.chunks_added > 200
    longest = max(len(text) for _, text, _ in kb.store.iter_all())
    assert longest < 10_000, longest


def test_a_file_of_too_many_sections_is_skipped_before_it_is_chunked(tmp_path, hash_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "sections.md").write_text("".join(f"## h{i}\nx{i}\n" for i in range(3_000)))
    (docs / "good.txt").write_text("Shipping takes three days.")
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.settings.max_file_chunks = 1_000

    summary = kb.ingest(docs)

    assert [os.path.basename(p) for p in summary.added] == ["good.txt"]
    assert "LLMOS_KB_MAX_FILE_CHUNKS" in _reasons(summary)["sections.md"]


def test_a_chunk_repeated_within_a_file_is_stored_once(tmp_path, hash_embedder):
    """Thousands of identical vectors trapped Chroma's HNSW search: no other file was found by dense search."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "repeats.md").write_text("## h\nx\n" * 5_000 + "## other\nunique text\n")
    kb = KnowledgeBase(tmp_path / "kb", embedder=hash_embedder)
    kb.ingest(docs)
    assert sorted(text for _, text, _ in kb.store.iter_all()) == ["## h\nx", "## other\nunique text"]


def test_a_line_without_separators_is_cut_in_linear_time_into_bounded_chunks():
    """Splitting into characters measured each one with the tokenizer: 100 kB of base64 took 30 s."""
    import base64
    import random

    from llmos.knowledge.chunking import Chunker
    from llmos.knowledge.types import Section

    calls = []

    def count_tokens(text: str) -> int:  # dense text: about one token per two characters
        calls.append(len(text))
        return (len(text) + 1) // 2

    text = base64.b64encode(random.Random(0).randbytes(150_000)).decode()
    chunker = Chunker(count_tokens, max_tokens=200, overlap=30)
    chunks = chunker.split([Section(text=text)], "x.txt", "hash")

    assert "".join(c.text for c in chunks) == text
    assert all(count_tokens(c.text) <= 200 and len(c.text) <= chunker.max_chars for c in chunks)
    assert len(calls) < 5 * len(chunks) + 10, (len(calls), len(chunks))
    assert sum(calls) < 10 * len(text)  # never the whole 200 kB over and over


def test_a_long_word_counted_as_one_token_still_gives_bounded_chunks():
    """A WordPiece tokenizer counts a word of over 100 characters as one unknown token."""
    from llmos.knowledge.chunking import Chunker
    from llmos.knowledge.types import Section

    chunker = Chunker(lambda text: len(text.split()), max_tokens=50, overlap=10)
    chunks = chunker.split([Section(text="ab" * 100_000 + "c")], "x.txt", "hash")
    assert max(len(c.text) for c in chunks) <= chunker.max_chars and chunks[-1].text.endswith("c")
