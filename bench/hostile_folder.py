"""A hostile folder: dozens of kinds of bad files next to good ones, ingested by a real knowledge base.

    python -m bench.hostile_folder [--scale 1.0]

The folder holds good files of known content (Markdown, text, JSON, JSONL, CSV, HTML, DOCX,
PDF) and at least 30 kinds of bad ones: empty, binary, wrongly encoded, truncated, corrupt,
deeply nested, huge, pathological for a regular expression or a splitter, links that loop or
lead out of the folder, a FIFO, an unreadable file, a file rewritten while it is read...
`run_hostile_folder()` ingests it into Chroma in a temporary folder with the default
embedding model, twice (the second run must find everything unchanged), and reports:

- `good_files_ingested`: good files stored; `good_files_found`: those a search for their fact
  finds in its top 5 (hybrid search),
- `aborted_runs`: ingestions that raised or did not finish within the time limit,
- `per_kind`: what happened to each kind (stored, or skipped with the reason llmos gave),
  and whether that is what llmos promises for it.

`python -m bench.fuzz` puts the result under "hostile_folder" in bench/results/fuzz.json;
run alone, this module prints a table and writes bench/results/hostile_folder.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import stat
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# --- good files: known content, each found again by a search for its fact ------------------------


@dataclass(frozen=True)
class GoodFile:
    name: str
    content: bytes
    query: str


def _docx_bytes(title: str, text: str) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pdf_bytes(pages: list[str]) -> bytes:
    """A small valid PDF with one line of Helvetica text per page (written by hand: no PDF writer needed)."""
    font = 3 + 2 * len(pages)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages))).encode(), len(pages)),
    ]
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources << /Font << /F1 %d 0 R >> >> >>"
            % (4 + 2 * i, font)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def good_files() -> list[GoodFile]:
    """Ten files of ordinary formats, each stating one fact no other file states."""
    return [
        GoodFile("returns.md", b"# Returns\n\nTents can be returned within 30 days of delivery for a full refund.\n", "return a tent refund"),
        GoodFile("shipping.txt", b"Parcels to Norway travel by ferry and arrive in six working days.\n", "shipping to Norway"),
        GoodFile(
            "warranty.json",
            json.dumps({"product": "kayak paddle", "warranty": "The kayak paddle carries a five year warranty."}).encode(),
            "kayak paddle warranty",
        ),
        GoodFile(
            "stores.csv",
            b"city,opening hours\nLyon,The Lyon store opens at nine on Saturdays\nOslo,The Oslo store is closed on Sundays\n",
            "Lyon store opening hours",
        ),
        GoodFile(
            "careers.html",
            b"<html><head><title>Careers</title><script>var x = 1;</script></head><body><h1>Careers</h1>"
            b"<p>Our climbing instructors are certified by the alpine guild.</p></body></html>",
            "climbing instructors certified",
        ),
        GoodFile(
            "faq.jsonl",
            b'{"q": "Do you rent snowshoes?", "a": "Snowshoes can be rented by the weekend."}\n',
            "rent snowshoes weekend",
        ),
        GoodFile("stoves.docx", _docx_bytes("Stoves", "Camping stoves must never be used inside a tent."), "camping stove inside tent"),
        GoodFile("lanterns.pdf", pdf_bytes(["Lantern batteries last forty hours on the low setting."]), "lantern battery hours"),
        GoodFile("UPPERCASE.MD", b"# Ropes\n\nClimbing ropes are retired after five years of use.\n", "climbing rope retired"),
        GoodFile(
            "bom_utf8.txt",
            "\ufeffThe café in the Grenoble shop serves hot chocolate until noon.\n".encode(),
            "Grenoble café hot chocolate",
        ),
    ]


# --- bad files: each kind writes its own entries ----------------------------------------------------

Expect = Literal["skipped", "stored", "either", "absent"]
"""What llmos promises: reported as skipped, stored, either (no abort, nothing lost), or never listed."""


@dataclass(frozen=True)
class Kind:
    name: str
    expect: Expect
    make: Callable[[Path, float], list[Path]]  # (folder, scale) -> the paths it wrote, as ingestion will name them
    note: str = ""


def _write(path: Path, data: bytes) -> list[Path]:
    path.write_bytes(data)
    return [path]


def _rng() -> random.Random:
    return random.Random(1234)


def _big(scale: float, size: int) -> int:
    return max(1, int(size * scale))


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def _encrypted_pdf(folder: Path, _: float) -> list[Path]:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf_bytes(["A locked page"]))))
    writer.encrypt(user_password="secret", algorithm="RC4-128")  # AES needs the cryptography package
    path = folder / "encrypted.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    return [path]


def _blank_pdf(folder: Path, _: float) -> list[Path]:
    import pypdf

    writer = pypdf.PdfWriter()
    writer.add_blank_page(612, 792)
    path = folder / "blank_pages.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    return [path]


def _docx_bomb(folder: Path, scale: float) -> list[Path]:
    # 1 GB of spaces inside word/document.xml compresses to about 1 MB; never under 300 MB, or it is no bomb.
    size = max(_big(scale, 1_000_000_000), 300_000_000)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b'<?xml version="1.0"?><Types/>')
        with archive.open("word/document.xml", "w", force_zip64=True) as entry:
            block = b" " * 1_000_000
            for _ in range(size // len(block)):
                entry.write(block)
    return _write(folder / "zip_bomb.docx", out.getvalue())


def _docx_laughs(folder: Path, _: float) -> list[Path]:
    entities = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
    document = f'<?xml version="1.0"?><!DOCTYPE d [{entities}]><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>&a9;</w:t></w:r></w:p></w:body></w:document>'
    content_types = (
        '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>'
    )
    data = _zip({"[Content_Types].xml": content_types.encode(), "_rels/.rels": rels.encode(), "word/document.xml": document.encode()})
    return _write(folder / "billion_laughs.docx", data)


def _csv_nul(folder: Path, _: float) -> list[Path]:
    return _write(folder / "nul.csv", b"name,notes\n" + b"a,b\n" * 3000 + b"x,y\x00z\n")


def _symlink_loop(folder: Path, _: float) -> list[Path]:
    os.symlink("loop_b.md", folder / "loop_a.md")
    os.symlink("loop_a.md", folder / "loop_b.md")
    (folder / "loop_dir").mkdir()
    os.symlink("..", folder / "loop_dir" / "up")
    return [folder / "loop_a.md", folder / "loop_b.md", folder / "loop_dir" / "up"]


def _symlink_outside(folder: Path, _: float) -> list[Path]:
    secret = folder.parent / "outside_secret.txt"
    secret.write_text("The vault code is 0000 and must never be indexed.")
    os.symlink(secret, folder / "escape.txt")
    os.symlink("/etc", folder / "etc_link")
    return [folder / "escape.txt", folder / "etc_link"]


def _symlink_device(folder: Path, _: float) -> list[Path]:
    os.symlink("/dev/zero", folder / "zeros.txt")
    return [folder / "zeros.txt"]


def _dangling(folder: Path, _: float) -> list[Path]:
    os.symlink("does_not_exist.md", folder / "dangling.md")
    return [folder / "dangling.md"]


def _unreadable(folder: Path, _: float) -> list[Path]:
    path = folder / "unreadable.md"
    path.write_text("# Locked\n\nThis file has no read permission.\n")
    path.chmod(0)
    return [path]


def _fifo(folder: Path, _: float) -> list[Path]:
    os.mkfifo(folder / "fifo.md")
    return [folder / "fifo.md"]


def _socket(folder: Path, _: float) -> list[Path]:
    path = folder / "socket.txt"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()  # the socket file stays
    return [path]


def _dir_named_like_file(folder: Path, _: float) -> list[Path]:
    (folder / "folder.md").mkdir()
    (folder / "folder.md" / "inside.txt").write_text("A file inside a folder whose name ends in .md is still read.")
    return [folder / "folder.md" / "inside.txt"]


def _sparse_huge(folder: Path, _: float) -> list[Path]:
    path = folder / "sparse_60mb.txt"
    with open(path, "wb") as f:
        f.truncate(60_000_000)  # over the 50 MB default limit, and costs no disk
    return [path]


def _bad_name(folder: Path, _: float) -> list[Path]:
    name = os.fsdecode(b"latin1_caf\xe9.md")  # not UTF-8: a surrogate escape in Python
    (folder / name).write_text("A file whose name is not UTF-8.")
    return [folder / name]


_CHANGING = "changing.txt"


def _changing(folder: Path, _: float) -> list[Path]:
    (folder / _CHANGING).write_text("Version 0 of a file that is rewritten while the folder is ingested.")
    return [folder / _CHANGING]


def kinds() -> list[Kind]:
    rng = _rng()
    w = _write
    text_kb = b"Plain words. " * 1000
    return [
        Kind("empty file", "skipped", lambda d, s: w(d / "empty.md", b"")),
        Kind("only whitespace", "skipped", lambda d, s: w(d / "whitespace.txt", b" \t\n\r\n   \n" * 100)),
        Kind("only '#' characters", "either", lambda d, s: w(d / "hashes.md", b"#" * 5000)),
        Kind("binary garbage named .md", "skipped", lambda d, s: w(d / "garbage.md", rng.randbytes(20_000))),
        Kind("PNG named .txt", "skipped", lambda d, s: w(d / "image.txt", b"\x89PNG\r\n\x1a\n" + rng.randbytes(5_000))),
        Kind("NUL byte at the start", "skipped", lambda d, s: w(d / "nul_start.txt", b"\x00" + text_kb)),
        Kind("NUL byte after 8 kB of text", "skipped", lambda d, s: w(d / "nul_late.txt", text_kb + b"\x00tail")),
        Kind("invalid UTF-8 (Latin-1)", "skipped", lambda d, s: w(d / "latin1.txt", "Caf\xe9 cr\xe8me br\xfbl\xe9e.".encode("latin-1"))),
        Kind("UTF-16 with BOM", "stored", lambda d, s: w(d / "utf16_bom.txt", "Kayak rental closes at dusk.".encode("utf-16"))),
        Kind("UTF-16 without BOM", "skipped", lambda d, s: w(d / "utf16_nobom.txt", "Kayak rental closes at dusk.".encode("utf-16-le"))),
        Kind("lone surrogate escaped in JSON", "either", lambda d, s: w(d / "surrogate.json", b'{"text": "broken \\ud800 pair"}')),
        Kind("lone surrogate entity in HTML", "either", lambda d, s: w(d / "surrogate.html", b"<p>broken &#xD800; pair</p>")),
        Kind("truncated PDF", "skipped", lambda d, s: w(d / "truncated.pdf", pdf_bytes(["cut short"])[:200])),
        Kind("PDF that is not a PDF", "skipped", lambda d, s: w(d / "fake.pdf", b"<html>not a pdf</html>")),
        Kind("encrypted PDF", "skipped", _encrypted_pdf),
        Kind("PDF of blank pages", "skipped", _blank_pdf),
        Kind("zero-byte PDF", "skipped", lambda d, s: w(d / "zero.pdf", b"")),
        Kind("DOCX of zip garbage", "skipped", lambda d, s: w(d / "garbage.docx", b"PK\x03\x04" + rng.randbytes(3_000))),
        Kind("DOCX that is a zip of something else", "skipped", lambda d, s: w(d / "other.docx", _zip({"readme.txt": b"hello"}))),
        Kind("DOCX zip bomb", "skipped", _docx_bomb),
        Kind("DOCX with entity expansion", "either", _docx_laughs),
        Kind("JSON nested 10,000 deep", "skipped", lambda d, s: w(d / "deep.json", b"[" * 10_000 + b"]" * 10_000)),
        Kind("JSON objects nested 10,000 deep", "skipped", lambda d, s: w(d / "deep_obj.json", b'{"a":' * 10_000 + b"1" + b"}" * 10_000)),
        Kind("huge single-line JSON", "either", lambda d, s: w(d / "huge_line.json", json.dumps({"values": list(range(_big(s, 400_000)))}).encode())),
        Kind("JSON number of 5,000 digits", "skipped", lambda d, s: w(d / "bigint.json", b"1" * 5_000)),
        Kind("invalid JSON", "skipped", lambda d, s: w(d / "invalid.json", b"{'single': 'quotes',")),
        Kind("JSON lines with bad lines", "skipped", lambda d, s: w(d / "bad_lines.jsonl", b'{"ok": 1}\n{broken\n{"ok": 2}\n')),
        Kind("CSV field over 131,072 characters", "skipped", lambda d, s: w(d / "wide_field.csv", b"a,b\nx," + b"y" * 200_000 + b"\n")),
        Kind("CSV with inconsistent columns", "stored", lambda d, s: w(d / "ragged.csv", b"a,b,c\n1\n1,2,3,4,5\n,,\nragged row kept\n")),
        Kind("CSV with NUL after the sniffed part", "skipped", _csv_nul),
        Kind("CSV with a 1 MB header cell", "either", lambda d, s: w(d / "huge_header.csv", b"h" * _big(s, 1_000_000) + b",b\n" + b"1,2\n" * 2_000)),
        Kind("HTML nested 100,000 deep", "either", lambda d, s: w(d / "deep.html", b"<div>" * _big(s, 100_000) + b"deep" + b"</div>" * _big(s, 100_000))),
        Kind("HTML of only scripts", "skipped", lambda d, s: w(d / "scripts.html", b"<script>alert(1)</script>" * 100)),
        Kind("5 MB line without spaces", "either", lambda d, s: w(d / "one_line.txt", b"abcdefghij" * _big(s, 500_000))),
        Kind("300 kB base64 line", "either", lambda d, s: w(d / "base64.txt", __import__("base64").b64encode(rng.randbytes(_big(s, 225_000))))),
        Kind("1 MB line of distinct words", "either", lambda d, s: w(d / "words.txt", " ".join(f"w{i:x}q" for i in range(_big(s, 150_000))).encode())),
        Kind("heading line of 20,000 spaces", "either", lambda d, s: w(d / "spaces_heading.md", b"# a" + b" " * 20_000 + b"b\n\nbody\n")),
        Kind("heading of 1 MB with a long body", "either", lambda d, s: w(d / "giant_heading.md", b"# " + b"word " * _big(s, 200_000) + b"\n\n" + b"Body text. " * 5_000)),
        Kind("a million headings, no text", "skipped", lambda d, s: w(d / "headings.md", b"# h\n" * _big(s, 1_000_000))),
        Kind("300,000 tiny sections", "skipped", lambda d, s: w(d / "sections.md", b"## h\nx\n" * _big(s, 300_000))),
        Kind("filename of 250 characters", "stored", lambda d, s: w(d / ("n" * 247 + ".md"), b"A file with a very long name about glacier maps.")),
        Kind("filename with newline and unicode", "stored", lambda d, s: w(d / "line\nbreak \u2603 \u00e9t\u00e9.md", b"A snowman file about summer hikes.")),
        Kind("filename that is not UTF-8", "skipped", _bad_name),
        Kind("hidden file", "absent", lambda d, s: w(d / ".hidden.md", b"Hidden files are not ingested.")),
        Kind("symlink loop", "skipped", _symlink_loop),
        Kind("symlink out of the folder", "skipped", _symlink_outside),
        Kind("symlink to /dev/zero", "skipped", _symlink_device),
        Kind("dangling symlink", "skipped", _dangling),
        Kind("unreadable file (chmod 000)", "either", _unreadable, "root reads it anyway; any other user gets it skipped"),
        Kind("FIFO named .md", "skipped", _fifo),
        Kind("Unix socket named .txt", "skipped", _socket),
        Kind("folder named like a file (x.md/)", "stored", _dir_named_like_file),
        Kind("sparse 60 MB file", "skipped", _sparse_huge),
        Kind("file rewritten during ingestion", "either", _changing),
    ]


# --- the run -------------------------------------------------------------------------------------


def build_folder(folder: Path, scale: float = 1.0) -> tuple[dict[str, GoodFile], dict[str, list[Path]]]:
    """Write the good files and every kind of bad file; (good files by path, paths of each kind)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = {}
    for file in good_files():
        (folder / file.name).write_bytes(file.content)
        good[str(folder / file.name)] = file
    written = {kind.name: kind.make(folder, scale) for kind in kinds()}
    return good, written


def _rewrite_while_running(path: Path, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        try:
            path.write_text(f"Version {n} of a file that is rewritten while the folder is ingested. " * (n % 50))
        except OSError:
            pass
        time.sleep(0.01)


def _unblock_fifos(folder: Path) -> None:
    """If an ingestion blocks on the FIFO, a writer that opens and closes it lets it go on."""
    for entry in folder.iterdir():
        if entry.is_fifo():
            try:
                fd = os.open(entry, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass


def _ingest(kb, folder: Path, timeout: float):
    """(summary, error) of one ingestion that may not take more than `timeout` seconds."""
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["summary"] = kb.ingest(folder)
        except BaseException as exc:  # noqa: BLE001 - any escape is an aborted run, reported
            result["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _unblock_fifos(folder)
        thread.join(30)
        return None, f"did not finish within {timeout:.0f} s"
    return result.get("summary"), result.get("error")


def run_hostile_folder(
    scale: float = 1.0, embedder: Any = None, timeout: float = 600.0, max_file_chunks: int = 2_000
) -> dict[str, Any]:
    """Ingest a hostile folder twice with a real knowledge base; figures and the outcome of each kind.

    `scale` shrinks the big files (1.0: the sizes named in `kinds()`); `embedder` defaults to the
    packaged all-MiniLM-L6-v2. `max_file_chunks` is LLMOS_KB_MAX_FILE_CHUNKS for the run: the
    default (100,000) would have the megabytes of junk text embedded, an hour on 2 cores.
    """
    from llmos.knowledge import KnowledgeBase, SentenceTransformerEmbedder

    embedder = embedder or SentenceTransformerEmbedder()
    with tempfile.TemporaryDirectory(prefix="llmos-hostile-") as tmp:
        root = Path(tmp).resolve()
        folder = root / "docs"
        good, written = build_folder(folder, scale)
        kb = KnowledgeBase(root / "kb", embedder=embedder)
        kb.settings.max_file_chunks = max_file_chunks

        started = time.perf_counter()
        stop = threading.Event()
        rewriter = threading.Thread(target=_rewrite_while_running, args=(folder / _CHANGING, stop), daemon=True)
        rewriter.start()
        try:
            first, first_error = _ingest(kb, folder, timeout)
        finally:
            stop.set()
            rewriter.join()
        second, second_error = None, None
        if first_error is None:  # a run still hanging would race with a second one
            second, second_error = _ingest(kb, folder, timeout)  # nothing changed but the rewritten file
        seconds = time.perf_counter() - started
        errors = [e for e in (first_error, second_error) if e]

        found = {path for path, file in good.items() if _found(kb, path, file.query)} if first else set()
        stored = set(first.added) if first else set()
        skipped = {s.path: s.reason for s in first.skipped} if first else {}
        per_kind = {kind.name: _outcome(kind, written[kind.name], stored, skipped) for kind in kinds()}
        for path in (folder / "unreadable.md",):
            if path.exists():
                path.chmod(stat.S_IRUSR | stat.S_IWUSR)  # so that the temporary folder can be removed
        return {
            "kinds": len(per_kind),
            "good_files": len(good),
            "good_files_ingested": len(set(good) & stored),
            "good_files_found": len(found & stored),
            "good_files_not_found": sorted(Path(p).name for p in set(good) - (found & stored)),
            "aborted_runs": len(errors),
            "errors": errors,
            "skipped": len(skipped),
            "stored": len(stored),
            "unchanged_on_second_run": second.unchanged if second else 0,
            "unexpected": sorted(name for name, outcome in per_kind.items() if not outcome["as_promised"]),
            "seconds": round(seconds, 2),
            "scale": scale,
            "settings": {"max_file_mb": kb.settings.max_file_mb, "max_file_chunks": max_file_chunks},
            "per_kind": per_kind,
        }


def _found(kb, path: str, query: str) -> bool:
    return any(hit.source == path for hit in kb.search(query, k=5))


def _outcome(kind: Kind, paths: list[Path], stored: set[str], skipped: dict[str, str]) -> dict[str, Any]:
    from llmos.knowledge.sync import printable

    names = [str(p) for p in paths] + [printable(p) for p in paths]  # a name that is not UTF-8 is reported printable
    reasons = [skipped[n] for n in names if n in skipped]
    if any(n in stored for n in names):
        outcome = "stored"
    elif reasons:
        outcome = "skipped"
    else:
        outcome = "absent"
    promised = kind.expect == outcome or (kind.expect == "either" and outcome in ("stored", "skipped"))
    return {"outcome": outcome, "reason": "; ".join(dict.fromkeys(reasons)), "expected": kind.expect, "as_promised": promised, "note": kind.note}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size factor of the big files (1.0: 5 MB lines, 1 GB zip bomb...)")
    args = parser.parse_args()

    from bench.common import print_table, write_results

    result = run_hostile_folder(scale=args.scale)
    rows = [
        [name, o["outcome"] + ("" if o["as_promised"] else f" (expected {o['expected']})"), (o["reason"] or o["note"])[:110]]
        for name, o in result["per_kind"].items()
    ]
    print_table("Hostile folder: each kind of bad file", ["kind", "outcome", "reason"], rows)
    figures = {k: v for k, v in result.items() if k != "per_kind"}
    print_table("Hostile folder", ["figure", "value"], [[k, v] for k, v in figures.items()])
    print(f"wrote {write_results('hostile_folder', result)}")


if __name__ == "__main__":
    main()
