"""Sync a file or folder into a tenant's store: add new files, re-embed changed ones, remove deleted ones.

Crash safety rests on one order of writes, per file:

1. the manifest marks the file `pending` (committed),
2. every chunk Chroma holds for that file is deleted, then the new chunks are written,
3. the manifest records the file as `done` with its content hash.

A run that dies anywhere leaves the file `pending` (or not yet touched); the next run
deletes whatever chunks a pending file has and ingests it again. Chunk ids derive from
path and content, so nothing is ever stored twice.

Ingestion is a pipeline of three threads, so that the CPU-bound embedding never waits:
a reader loads and chunks the next files, the caller's thread embeds a batch, and a
writer stores the previous batch (Chroma and the manifest). Batches are written one at
a time and in order, each with the order of writes above; an error in any stage stops
the run once the batch being written is complete.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from llmos.errors import LoaderError
from llmos.knowledge.chunking import Chunker
from llmos.knowledge.loaders import READERS, check_size, load
from llmos.knowledge.store import ChunkStore
from llmos.knowledge.types import Chunk, Skipped, SyncSummary

PENDING, DONE = "pending", "done"


class Manifest:
    """Which files each tenant holds, by content hash (SQLite: every write is atomic)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with closing(self._connect()) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS files (tenant TEXT, source TEXT, hash TEXT, chunks INTEGER, state TEXT,"
                " PRIMARY KEY (tenant, source))"
            )
            db.execute("CREATE TABLE IF NOT EXISTS versions (tenant TEXT PRIMARY KEY, version INTEGER)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def files(self, tenant: str) -> dict[str, tuple[str, int, str]]:
        """source -> (hash, chunks, state)."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT source, hash, chunks, state FROM files WHERE tenant = ?", (tenant,))
            return {s: (h, n, st) for s, h, n, st in rows}

    def mark(self, tenant: str, entries: list[tuple[str, str, int]], state: str) -> None:
        """Record (source, hash, chunks) rows in one transaction."""
        with closing(self._connect()) as db, db:
            db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", [(tenant, s, h, n, state) for s, h, n in entries]
            )

    def forget(self, tenant: str, source: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM files WHERE tenant = ? AND source = ?", (tenant, source))

    def version(self, tenant: str) -> int:
        with closing(self._connect()) as db:
            row = db.execute("SELECT version FROM versions WHERE tenant = ?", (tenant,)).fetchone()
            return row[0] if row else 0

    def bump(self, tenant: str) -> int:
        """Called before the store changes, so that a keyword index built earlier is known to be stale."""
        with closing(self._connect()) as db, db:
            version = (db.execute("SELECT version FROM versions WHERE tenant = ?", (tenant,)).fetchone() or (0,))[0] + 1
            db.execute("INSERT OR REPLACE INTO versions VALUES (?, ?)", (tenant, version))
            return version


# --- finding files -----------------------------------------------------------------------------


def find_files(target: Path) -> tuple[Path, list[Path], list[Skipped]]:
    """(root, files to ingest, paths skipped) for a file or a folder.

    Symbolic links are followed only while they stay inside the root; loops and links
    leading out of it are reported, never followed. Hidden entries (.git) are ignored,
    and so are files of unsupported types inside a folder.
    """
    target = Path(target).expanduser().absolute()
    if not target.exists():
        raise LoaderError(f"{target} does not exist")
    if target.is_file():
        if not _utf8(str(target.resolve())):
            return target.parent.resolve(), [], [Skipped(path=printable(target), reason="file name is not valid UTF-8; rename the file")]
        return target.parent.resolve(), [target.resolve()], []
    root = target.resolve()
    files: list[Path] = []
    skipped: list[Skipped] = []
    seen_dirs = {root}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skipped.append(Skipped(path=str(folder), reason=f"cannot list folder: {exc.strerror or exc}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if not _utf8(entry.name):
                # Chroma and the manifest hold paths as UTF-8: such a name would fail the whole batch it is in.
                skipped.append(Skipped(path=printable(path), reason="file name is not valid UTF-8; rename the file"))
                continue
            try:
                real = path.resolve(strict=True)
            except RuntimeError:  # Python 3.11 reports a symlink loop this way
                skipped.append(Skipped(path=str(path), reason="symlink loop"))
                continue
            except OSError as exc:
                reason = "symlink loop" if exc.errno == errno.ELOOP else f"broken link or unreadable: {exc.strerror}"
                skipped.append(Skipped(path=str(path), reason=reason))
                continue
            if not _utf8(str(real)):  # a link to a file whose name is not UTF-8
                skipped.append(Skipped(path=str(path), reason="links to a file whose name is not valid UTF-8; rename it"))
                continue
            if not real.is_relative_to(root):
                skipped.append(Skipped(path=str(path), reason=f"outside the root {root} (link to {real})"))
                continue
            if real.is_dir():
                if real in seen_dirs:
                    skipped.append(Skipped(path=str(path), reason="symlink loop (folder already visited)"))
                else:
                    seen_dirs.add(real)
                    stack.append(real)
            elif real.suffix.lower() in READERS:
                if real.is_file():
                    files.append(real)
                else:  # a FIFO would block the reader forever; a socket or a device is no document either
                    skipped.append(Skipped(path=str(path), reason="not a regular file (a FIFO, socket or device)"))
    # A link and its target are the same document: keep one.
    return root, sorted(set(files)), skipped


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # undecodable bytes of the name, kept by Python as lone surrogates
        return False


def printable(path: Path) -> str:
    """A path as text that any output can hold: undecodable bytes of its name shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file, never blocking on a FIFO and never reading past `max_bytes` (+1 to notice)."""
    # O_NONBLOCK: a file replaced by a FIFO after the folder was listed would block open() forever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LoaderError("not a regular file (a FIFO, socket or device)")
        check_size(info.st_size, max_bytes)  # before reading: a huge file is never loaded
        data = file.read(max_bytes + 1)  # a file that grows while it is read stops here
    check_size(len(data), max_bytes)
    return data


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the sync itself ---------------------------------------------------------------------------


class Syncer:
    """Brings one tenant's store in line with a file or folder."""

    def __init__(
        self,
        store: ChunkStore,
        manifest: Manifest,
        chunker: Chunker,
        embed: Callable[[list[str]], np.ndarray],
        *,
        max_bytes: int,
        max_chunks: int = 100_000,
        batch_size: int = 256,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.chunker = chunker
        self.embed = embed
        self.max_bytes = max_bytes
        self.max_chunks = max_chunks
        self.batch_size = batch_size
        self.tenant = store.tenant

    def run(self, target: Path, tags: list[str] | None = None, progress: bool = False) -> SyncSummary:
        started = time.perf_counter()
        summary = SyncSummary(tenant=self.tenant)
        root, files, skipped = find_files(target)
        summary.skipped += skipped
        known = self.manifest.files(self.tenant)

        # 1. Repair what an interrupted run left half-written.
        for source, (_, _, state) in known.items():
            if state == PENDING:
                self._changing()
                summary.chunks_removed += self.store.delete_source(source)
                self.manifest.forget(self.tenant, source)
                summary.repaired.append(source)
        known = {s: v for s, v in known.items() if v[2] == DONE}

        # 2. Remove files that are gone from the folder that was synced.
        present = {str(f) for f in files}
        scope = str(root) + os.sep
        for source in sorted(known):
            inside = source.startswith(scope) if Path(target).is_dir() else source == str(files[0])
            if inside and source not in present and not Path(source).exists():
                self._changing()
                self.manifest.mark(self.tenant, [(source, known[source][0], known[source][1])], PENDING)
                summary.chunks_removed += self.store.delete_source(source)
                self.manifest.forget(self.tenant, source)
                summary.removed.append(source)

        # 3. Add new and changed files, embedding chunks of several files together (bigger batches run faster).
        with _progress(progress, len(files)) as bar, ThreadPoolExecutor(1, thread_name_prefix="llmos-ingest-write") as writer:
            written = None
            try:
                for batch in _prefetched(self._batches(files, known, tags, summary, bar)):
                    vectors = self.embed([c.text for _, _, cs, _ in batch for c in cs])  # before any write: may be interrupted
                    if written is not None:
                        written.result()  # one batch at a time, in order; raises what the writer raised
                    written = writer.submit(self._write, batch, vectors, summary, bar)
            finally:
                if written is not None:
                    written.result()  # never leave a batch half-written behind, even when the run stops
        summary.seconds = time.perf_counter() - started
        return summary

    def _batches(self, files: list[Path], known, tags, summary: SyncSummary, bar):
        """Batches of (source, hash, chunks, is_new) for the files that are new or changed.

        Every batch, the first too, holds `batch_size` chunks or more. The model pads each
        mini-batch to its longest text after sorting one call's texts by length, so bigger
        calls pad less: a small first batch, to start embedding sooner, cost 5% of the
        throughput of an ingestion here, far more than the reading it saved waiting for.
        """
        batch: list[tuple[str, str, list[Chunk], bool]] = []
        for path in files:
            entry = self._prepare(path, known.get(str(path)), tags, summary)
            if entry is None:
                bar.advance(summary)
                continue
            batch.append(entry)
            if sum(len(e[2]) for e in batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _prepare(self, path: Path, known, tags, summary: SyncSummary):
        source = str(path)
        try:
            data = read_regular_file(path, self.max_bytes)
        except LoaderError as exc:
            summary.skipped.append(Skipped(path=source, reason=str(exc)))
            return None
        except OSError as exc:
            summary.skipped.append(Skipped(path=source, reason=f"cannot read: {exc.strerror or exc}"))
            return None
        digest = file_hash(data)
        if known is not None and known[0] == digest:
            summary.unchanged += 1
            return None
        try:
            sections = load(path, self.max_bytes, data)
            self._check_chunks(len(sections))  # before chunking: 300,000 tiny sections take minutes to count
            chunks = self.chunker.split(sections, source, digest, tags)
            self._check_chunks(len(chunks))
        except LoaderError as exc:
            # A file that turned bad keeps its last good chunks: nothing stored is lost.
            summary.skipped.append(Skipped(path=source, reason=str(exc)))
            return None
        except Exception as exc:  # noqa: BLE001 - a parser's own failure (deep JSON, a huge CSV field...) is this file's alone
            reason = f"could not be read ({type(exc).__name__}: {str(exc)[:200]}); fix or remove the file"
            summary.skipped.append(Skipped(path=source, reason=reason))
            return None
        return source, digest, chunks, known is None

    def _check_chunks(self, count: int) -> None:
        if count > self.max_chunks:
            raise LoaderError(
                f"{count:,} or more chunks is over the {self.max_chunks:,} a file may give (LLMOS_KB_MAX_FILE_CHUNKS); "
                "split the file, or raise the limit"
            )

    def _write(self, batch: list[tuple[str, str, list[Chunk], bool]], vectors: np.ndarray, summary: SyncSummary, bar) -> None:
        self._changing()
        self.manifest.mark(self.tenant, [(s, h, len(cs)) for s, h, cs, _ in batch], PENDING)
        for source, _, _, is_new in batch:
            # A file new to the manifest has no chunks: a crashed run's leftovers were repaired in step 1.
            if not is_new:
                summary.chunks_removed += self.store.delete_source(source)
        self.store.add([c for _, _, cs, _ in batch for c in cs], vectors)  # one upsert for the whole batch
        for source, _, file_chunks, is_new in batch:
            summary.chunks_added += len(file_chunks)
            (summary.added if is_new else summary.updated).append(source)
        self.manifest.mark(self.tenant, [(s, h, len(cs)) for s, h, cs, _ in batch], DONE)
        bar.advance(summary, len(batch))

    def _changing(self) -> None:
        if not getattr(self, "_bumped", False):
            self.manifest.bump(self.tenant)
            self._bumped = True


_DONE = object()


def _prefetched(batches: Iterator[Any], ahead: int = 1) -> Iterator[Any]:
    """Run a generator in a thread, `ahead` items in advance (loading and chunking overlap embedding)."""
    items: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():  # the consumer may have stopped: never block on a queue nobody reads
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in batches:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="llmos-ingest-read", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class _progress:
    """A rich progress bar with file and chunk counts, or nothing."""

    def __init__(self, show: bool, total: int) -> None:
        self.show, self.total, self._bar = show, total, None

    def __enter__(self) -> _progress:
        if self.show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
            )
            self._bar.start()
            self._task = self._bar.add_task("ingest", total=self.total, info="")
        return self

    def advance(self, summary: SyncSummary, files: int = 1) -> None:
        if self._bar is not None:
            info = (
                f"+{len(summary.added)} ~{len(summary.updated)} -{len(summary.removed)} ={summary.unchanged} "
                f"skipped {len(summary.skipped)} | chunks +{summary.chunks_added} -{summary.chunks_removed}"
            )
            self._bar.update(self._task, advance=files, info=info)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
