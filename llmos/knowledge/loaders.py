"""Read a document into sections of text, each with its location (page, heading path, row).

`load(path)` picks the reader by extension. Anything unreadable raises `LoaderError`
with a reason a person can act on; the caller skips that file and goes on.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmos.errors import LoaderError
from llmos.knowledge.types import Location, Section

_SNIFF = 8192  # bytes looked at to guess a CSV dialect
_HEADING_MARK = re.compile(r"(#{1,6})[ \t]")  # no backtracking: a heading line of 20,000 spaces once took hours
_FENCE = re.compile(r"^\s*(```|~~~)")
_MAX_TITLE = 200  # characters of a heading (or CSV column name) kept: each chunk under it repeats it
_MAX_UNZIPPED = 200_000_000  # bytes a DOCX may hold once unzipped (a zip bomb holds gigabytes)
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def load(path: Path, max_bytes: int | None = None, data: bytes | None = None) -> list[Section]:
    """Sections of one file (its bytes may be given); raises LoaderError when it cannot or should not be read."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise LoaderError(f"unsupported file type '{path.suffix}' (supported: {', '.join(sorted(READERS))})")
    check_size(path.stat().st_size if data is None else len(data), max_bytes)
    if data is None:
        data = path.read_bytes()
    sections = [_clean(s) for s in reader(data) if s.text.strip()]
    if not sections:
        raise LoaderError("no text found (a scanned PDF needs OCR first)" if path.suffix.lower() == ".pdf" else "no text found")
    return sections


def check_size(size: int, max_bytes: int | None) -> None:
    if size == 0:
        raise LoaderError("empty file")
    if max_bytes is not None and size > max_bytes:
        raise LoaderError(f"{size / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit (LLMOS_KB_MAX_FILE_MB)")


def _clean(section: Section) -> Section:
    """Drop what no store can hold: lone surrogates and NULs (a JSON '\\ud800' or '\\u0000' escape gives them)."""
    text = section.text.replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate becomes '?'
    heading = section.location.heading
    if heading is not None and not heading.isascii():
        heading = heading.encode("utf-8", "replace").decode("utf-8")
    if text is section.text and heading is section.location.heading:
        return section
    return Section(text=text, location=section.location.model_copy(update={"heading": heading}))


def _text(data: bytes) -> str:
    """Decode a text file (UTF-8, or UTF-16/32 with a byte order mark), refusing binary data that only wears a text extension."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise LoaderError(f"not valid {encoding.upper()} text despite its byte order mark; save it as UTF-8") from None
    if b"\x00" in data:
        raise LoaderError("binary data in a text file (NUL bytes; UTF-16 without a byte order mark reads so too): save text as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoaderError(f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def _heading(line: str) -> tuple[int, str] | None:
    """(level, title) of a Markdown ATX heading line ('## Install ##'), or None; linear in the line's length."""
    match = _HEADING_MARK.match(line)
    if match is None:
        return None
    title = line[match.end():].strip()
    closed = title.rstrip("#")
    if closed != title and (not closed or closed[-1] in " \t"):  # a closing run of '#' after a space is decoration
        title = closed.strip()
    if not title:
        return None
    return len(match.group(1)), title[:_MAX_TITLE]


# --- plain text and Markdown --------------------------------------------------------------


def read_txt(data: bytes) -> list[Section]:
    return [Section(text=_text(data))]


def read_markdown(data: bytes) -> list[Section]:
    return markdown_sections(_text(data))


def markdown_sections(text: str) -> list[Section]:
    """One section per heading, located by its heading path ('Guide > Install > Linux')."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []  # (level, title) of the open headings
    lines: list[str] = []
    in_code = False

    def flush() -> None:
        body = "\n".join(lines).strip()
        heading_alone = "\n" not in body and _heading(body) is not None  # its text is all in subsections
        if body and not heading_alone:
            heading = " > ".join(title for _, title in path) or None
            sections.append(Section(text=body, location=Location(heading=heading)))
        lines.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code  # a '#' inside a code block is a comment, not a heading
        heading = None if in_code else _heading(line)
        if heading:
            flush()
            level, title = heading
            path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
        lines.append(line)
    flush()
    return sections


# --- HTML and DOCX: turned into headed sections the same way ------------------------------


def read_html(data: bytes) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_text(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg"]):
        tag.decompose()
    # Headings become Markdown headings so that one parser finds the structure of both formats.
    for tag in soup.find_all(re.compile(r"^h[1-6]$")):
        title = " ".join(tag.get_text(" ").split())
        tag.replace_with(f"\n\n{'#' * int(tag.name[1])} {title}\n\n" if title else "")
    body = soup.body or soup
    text = body.get_text("\n")
    text = re.sub(r"\n\s*\n\s*", "\n\n", text)  # markup leaves runs of blank lines
    return markdown_sections(text)


def read_docx(data: bytes) -> list[Section]:
    _check_unzipped_size(data)
    try:
        import docx

        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise LoaderError(f"not a readable DOCX file ({type(exc).__name__}: {exc})") from None
    lines: list[str] = []
    for block in document.iter_inner_content():
        if hasattr(block, "rows"):  # a table: one line per row, cells separated by ' | '
            for row in block.rows:
                lines.append(" | ".join(cell.text.strip() for cell in row.cells))
            continue
        text = block.text.strip()
        style = (block.style.name if block.style is not None else "") or ""
        level = _docx_heading_level(style)
        if level and text:
            lines.append(f"{'#' * level} {text}")
        elif text:
            lines.append(text)
        lines.append("")
    return markdown_sections("\n".join(lines))


def _check_unzipped_size(data: bytes) -> None:
    """Refuse a zip bomb before a parser unzips it: the sizes its directory declares bound what it yields."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            size = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise LoaderError(f"not a readable DOCX file (not a zip archive: {exc})") from None
    if size > _MAX_UNZIPPED:
        raise LoaderError(f"DOCX unzips to {size / 1e6:.0f} MB, over the {_MAX_UNZIPPED / 1e6:.0f} MB a document may hold (a zip bomb?)")


def _docx_heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.match(r"Heading (\d)", style)
    return min(int(match.group(1)), 6) if match else 0


# --- PDF: one section per page -------------------------------------------------------------


def read_pdf(data: bytes) -> list[Section]:
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # many "encrypted" PDFs only restrict printing, with no password
            except Exception:
                opened = 0
            if not opened:
                raise LoaderError("encrypted PDF that needs a password; decrypt it first")
        return [Section(text=page.extract_text() or "", location=Location(page=i)) for i, page in enumerate(reader.pages, 1)]
    except LoaderError:
        raise
    except Exception as exc:
        raise LoaderError(f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from None


# --- tabular and structured data: one section per row / item ------------------------------


def read_csv(data: bytes) -> list[Section]:
    text = _text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:_SNIFF], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    header = [name[:_MAX_TITLE] for name in next(rows, None) or []]  # each row repeats the names: keep them short
    sections = []
    for number, row in enumerate(rows, 1):
        # 'column: value' lines keep the meaning of each cell in the chunk text.
        pairs = [f"{h}: {v}" if h else v for h, v in zip(header, row) if v.strip()]
        pairs += [v for v in row[len(header):] if v.strip()]
        sections.append(Section(text="\n".join(pairs), location=Location(row=number)))
    return sections


def read_json(data: bytes) -> list[Section]:
    try:
        value = json.loads(_text(data))
    except json.JSONDecodeError as exc:
        raise LoaderError(f"invalid JSON (line {exc.lineno}: {exc.msg})") from None
    if isinstance(value, list):
        return [Section(text=_flatten(item), location=Location(row=i)) for i, item in enumerate(value, 1)]
    return [Section(text=_flatten(value))]


def read_jsonl(data: bytes) -> list[Section]:
    sections = []
    for number, line in enumerate(_text(data).split("\n"), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LoaderError(f"invalid JSON on line {number}: {exc.msg}") from None
        sections.append(Section(text=_flatten(item), location=Location(row=number)))
    return sections


def _flatten(value: Any) -> str:
    """'key: value' lines for an object, the text itself for a string, JSON otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(f"{k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False)


READERS: dict[str, Callable[[bytes], list[Section]]] = {
    ".txt": read_txt,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".csv": read_csv,
    ".json": read_json,
    ".jsonl": read_jsonl,
}
