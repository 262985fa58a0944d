"""Each format's text comes out with its location; unreadable files raise LoaderError."""

from __future__ import annotations

import io
import json

import pytest

from llmos.errors import LoaderError
from llmos.knowledge.chunking import Chunker
from llmos.knowledge.loaders import load
from llmos.knowledge.types import Location, Section

from .conftest import minimal_pdf


def test_markdown_heading_paths(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(
        "# Guide\n\nIntro.\n\n## Install\n\n### Linux\n\nUse apt.\n\n```sh\n# not a heading\n```\n\n## Refunds\n\nWithin 14 days.\n"
    )
    sections = load(path)
    assert [s.location.heading for s in sections] == ["Guide", "Guide > Install > Linux", "Guide > Refunds"]
    assert "# not a heading" in sections[1].text  # a comment in a code block stays in its section


def test_txt_and_html(tmp_path):
    (tmp_path / "a.txt").write_text("Plain words.\n\nMore words.")
    assert load(tmp_path / "a.txt")[0].text.startswith("Plain words.")

    (tmp_path / "p.html").write_text(
        "<html><head><style>p{}</style></head><body><h1>About</h1><p>Founded 1999.</p>"
        "<h2>Offices</h2><p>Paris and Tokyo.</p><script>var x = 1;</script></body></html>"
    )
    sections = load(tmp_path / "p.html")
    assert [s.location.heading for s in sections] == ["About", "About > Offices"]
    assert "Paris and Tokyo." in sections[1].text
    assert not any("var x" in s.text or "p{}" in s.text for s in sections)


def test_pdf_pages(tmp_path):
    path = tmp_path / "doc.pdf"
    path.write_bytes(minimal_pdf(["First page about cats", "Second page about dogs"]))
    sections = load(path)
    assert [s.location.page for s in sections] == [1, 2]
    assert "dogs" in sections[1].text


def test_docx_headings_and_tables(tmp_path):
    import docx

    document = docx.Document()
    document.add_heading("Handbook", level=1)
    document.add_paragraph("Welcome aboard.")
    document.add_heading("Leave", level=2)
    document.add_paragraph("Twenty days per year.")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Sick leave", "Ten days"
    document.save(tmp_path / "h.docx")
    sections = load(tmp_path / "h.docx")
    assert [s.location.heading for s in sections] == ["Handbook", "Handbook > Leave"]
    assert "Sick leave | Ten days" in sections[1].text


def test_csv_json_jsonl_rows(tmp_path):
    (tmp_path / "p.csv").write_text("name,price\nwidget,3\ngadget,7\n")
    sections = load(tmp_path / "p.csv")
    assert [(s.text, s.location.row) for s in sections] == [("name: widget\nprice: 3", 1), ("name: gadget\nprice: 7", 2)]

    (tmp_path / "f.json").write_text(json.dumps([{"q": "hours?", "a": "9 to 5"}, {"q": "parking?", "a": "yes"}]))
    sections = load(tmp_path / "f.json")
    assert sections[1].location.row == 2 and "parking?" in sections[1].text

    (tmp_path / "f.jsonl").write_text('{"text": "one"}\n\n{"text": "two"}\n')
    assert [s.location.row for s in load(tmp_path / "f.jsonl")] == [1, 3]  # file line numbers


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"", "empty"),
        ("binary.txt", b"\x7fELF\x00\x00\x01" * 50, "binary"),
        ("latin.txt", "caf\xe9".encode("latin-1"), "UTF-8"),
        ("bad.json", b"{not json", "invalid JSON"),
        ("corrupt.pdf", b"%PDF-1.4\nthis is not a pdf at all", "PDF"),
        ("image.png", b"\x89PNG", "unsupported"),
    ],
)
def test_unreadable_files_raise(tmp_path, name, data, reason):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(LoaderError, match=reason):
        load(tmp_path / name)


def test_encrypted_pdf(tmp_path):
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(minimal_pdf(["secret plans"]))))
    writer.encrypt(user_password="hunter2", algorithm="RC4-128")
    writer.write(tmp_path / "locked.pdf")
    with pytest.raises(LoaderError, match="encrypted"):
        load(tmp_path / "locked.pdf")


def test_size_cap(tmp_path):
    (tmp_path / "big.txt").write_text("x" * 5000)
    with pytest.raises(LoaderError, match="limit"):
        load(tmp_path / "big.txt", max_bytes=1000)


def test_chunks_are_bounded_overlap_and_keep_location():
    words = [f"w{i}" for i in range(500)]
    section = Section(text=" ".join(words), location=Location(heading="A > B"))
    chunker = Chunker(lambda t: len(t.split()), max_tokens=100, overlap=20)
    chunks = chunker.split([section], "/docs/a.md", "hash1")
    assert len(chunks) >= 5
    assert all(len(c.text.split()) <= 100 + 3 for c in chunks)  # + the heading line given to later pieces
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert set(first[-10:]) & set(second)  # neighbours overlap
    assert all(c.location.heading == "A > B" for c in chunks)
    assert len({c.id for c in chunks}) == len(chunks)
    # Same file, same content: same ids (a resumed run overwrites, never duplicates).
    assert [c.id for c in chunker.split([section], "/docs/a.md", "hash1")] == [c.id for c in chunks]
    assert chunker.split([section], "/docs/a.md", "hash2")[0].id != chunks[0].id
