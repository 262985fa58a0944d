"""LocalModel: a transformers model running in this process, behind the async ChatModel interface.

One dedicated worker thread owns the model and serves a FIFO queue, one
generation at a time: a CPU has no spare cores to run two decodes faster than
one after the other, and the model's state (KV cache, torch threads) must not
be shared between requests. Results come back to the caller's event loop with
`loop.call_soon_threadsafe`, so the model works from any loop, and cancelling
the awaiting task sets a stop flag the decode loop checks every token.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from llmos.config import get_settings
from llmos.errors import PromptError, WeightsError
from llmos.llm.model import ChatModel, ChatRequest, ChatResponse, TextDelta

DEFAULT_MAX_CONTEXT = 8192
DEFAULT_MAX_TOKENS = 1024


class _Job:
    """One unit of work for the worker: `run(engine)` plus a way back to the caller's loop."""

    def __init__(self, run: Callable[[Any, _Job], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.run = run
        self.loop = loop
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.stop = threading.Event()

    def send(self, item: Any) -> None:
        """Hand an item to the awaiting coroutine (from the worker thread)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
            self.stop.set()


class _Done:
    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error


async def _next(job: _Job) -> Any:
    """The worker's next item for `job`: a TextDelta, or `_Done` at the end; its error is raised here."""
    item = await job.events.get()
    if isinstance(item, _Done) and item.error is not None:
        raise item.error
    return item


class LocalModel(ChatModel):
    """A chat model from a local transformers folder, or from the catalog by name (`from_catalog`)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        name: str | None = None,
        max_context: int = DEFAULT_MAX_CONTEXT,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        threads: int | None = None,
        dtype: str | None = None,
        adapter: str | Path | None = None,
        _catalog: str | None = None,
    ) -> None:
        if path is None and _catalog is None:
            raise ValueError("LocalModel needs a model folder (or use LocalModel.from_catalog(name)).")
        self.path = Path(path).expanduser() if path is not None else None
        self.catalog_name = _catalog
        base_name = _catalog or (self.path.name if self.path else "local")
        self.adapter: Path | None = None
        if adapter is not None:
            from llmos.finetune.adapters import check_base, locate, read_manifest

            # Checked now, not at the first request: a missing adapter or one trained on another base.
            self.adapter = locate(adapter)
            manifest = read_manifest(self.adapter)
            check_base(manifest, _catalog or str(self.path.resolve()))
            base_name = f"{base_name}+{manifest.name}"
        self.name = name or base_name
        self.max_context = max_context
        self.default_max_tokens = default_max_tokens
        self.threads = threads or get_settings().threads or os.cpu_count() or 1
        self.dtype = dtype
        self._engine: Any = None
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()  # guards _worker and _jobs
        self._run_lock = threading.Lock()  # one generation at a time, whichever worker runs it

    @classmethod
    def from_catalog(cls, name: str, **kwargs: Any) -> LocalModel:
        """A catalog model; its weights are prepared on first load if they are not yet."""
        from llmos.llm.local.catalog import get_entry

        get_entry(name)  # unknown names fail now, not at the first request
        return cls(None, _catalog=name, **kwargs)

    # --- lifecycle ------------------------------------------------------------------

    async def load(self) -> None:
        """Load the model now instead of at the first request."""
        await self._call(lambda engine, job: None)

    async def aclose(self) -> None:
        """Stop the worker thread (after the generation in progress) and free the weights. Safe to call twice."""
        with self._lock:
            worker, jobs = self._worker, self._jobs
            self._worker, self._jobs = None, queue.Queue()
            if worker is not None:
                jobs.put(None)
        if worker is not None:
            await asyncio.to_thread(worker.join)
        with self._lock:
            if self._worker is None:
                self._engine = None  # the next request loads it again

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def _ensure_engine(self) -> Any:
        """Runs on the worker thread."""
        if self._engine is None:
            from llmos.llm.local.engine import Engine

            path = self.path
            if path is None:
                from llmos.llm.local.catalog import prepare

                path = prepare(self.catalog_name)
            if not (path / "config.json").is_file():
                raise WeightsError(f"'{path}' is not a transformers model folder (no config.json).")
            if self.adapter is not None:
                from llmos.finetune.adapters import check_base, read_manifest

                # Also compares the base's weights with those the adapter was trained on (a warning if they changed).
                check_base(read_manifest(self.adapter), self.catalog_name or str(path.resolve()), path)
            self._engine = Engine(path, threads=self.threads, dtype=self.dtype, adapter=self.adapter)
        return self._engine

    def _serve(self, jobs: queue.Queue[_Job | None]) -> None:
        """The worker thread: one job at a time, in arrival order."""
        while (job := jobs.get()) is not None:
            if job.stop.is_set():  # cancelled while it waited in the queue
                continue
            # The lock only matters in the moment after aclose() when a new worker has started
            # and the old one still finishes its last job.
            with self._run_lock:
                try:
                    job.send(_Done(job.run(self._ensure_engine(), job)))
                except BaseException as exc:  # noqa: BLE001 - every failure goes back to its caller
                    job.send(_Done(error=exc))

    def _submit(self, run: Callable[[Any, _Job], Any]) -> _Job:
        job = _Job(run, asyncio.get_running_loop())
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._serve, args=(self._jobs,), name=f"llmos-local-{self.name}", daemon=True
                )
                self._worker.start()
            self._jobs.put(job)
        return job

    async def _call(self, run: Callable[[Any, _Job], Any]) -> Any:
        job = self._submit(run)
        try:
            while not isinstance(item := await _next(job), _Done):
                pass
            return item.value
        finally:
            job.stop.set()

    # --- chat -------------------------------------------------------------------------

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        if request.max_tokens is not None and request.max_tokens <= 0:
            raise PromptError(f"max_tokens must be at least 1, got {request.max_tokens}.")

        def run(engine: Any, job: _Job) -> Any:
            generation = engine.generate(
                request,
                max_context=self.max_context,
                default_max_tokens=self.default_max_tokens,
                on_text=lambda text: job.send(TextDelta(text=text)),
                stop=job.stop,
            )
            if generation is None:
                return None
            return ChatResponse(
                model=self.name,
                message=engine.answer(request, generation),
                usage=generation.usage,
                finish_reason=generation.finish_reason,
            )

        job = self._submit(run)
        try:
            while not isinstance(item := await _next(job), _Done):
                yield item
            yield item.value
        finally:
            # Reached on normal end, on error, and when the caller's task is cancelled or
            # drops the stream: the worker sees the flag at its next token and moves on.
            job.stop.set()
