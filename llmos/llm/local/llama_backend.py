"""LlamaCppModel: a GGUF model run by llama.cpp in this process, behind the async ChatModel interface.

One worker thread owns the engine (llama.cpp contexts are not thread-safe) and
runs its batches: requests that arrive while others are being answered join the
next batch, up to `parallel` at once; more wait in arrival order. Text comes back
to the caller's event loop with `loop.call_soon_threadsafe`, so the event loop
never waits on the model, and cancelling the awaiting task sets a stop flag the
worker checks at every step.
"""

from __future__ import annotations

import asyncio
import collections
import os
import queue
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from llmos.config import get_settings
from llmos.errors import PromptError, WeightsError
from llmos.llm.local.backend import DEFAULT_MAX_CONTEXT, DEFAULT_MAX_TOKENS, _Done, _next
from llmos.llm.model import ChatModel, ChatRequest, ChatResponse, TextDelta


class _Job:
    """One request for the worker (None: only load the model), and the way back to the caller's loop."""

    def __init__(self, request: ChatRequest | None, loop: asyncio.AbstractEventLoop, prefill_only: bool = False) -> None:
        self.request = request
        self.prefill_only = prefill_only  # read the prompt into the cache, generate nothing
        self.loop = loop
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.stop = threading.Event()

    def send(self, item: Any) -> None:
        """Hand an item to the awaiting coroutine (from the worker thread)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
            self.stop.set()


class LlamaCppModel(ChatModel):
    """A chat model from a GGUF file, or from the catalog by name (`from_catalog`)."""

    engine_name = "llamacpp"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        name: str | None = None,
        max_context: int = DEFAULT_MAX_CONTEXT,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        threads: int | None = None,
        parallel: int | None = None,
        _catalog: str | None = None,
    ) -> None:
        if path is None and _catalog is None:
            raise ValueError("LlamaCppModel needs a GGUF file (or use LlamaCppModel.from_catalog(name)).")
        settings = get_settings()
        self.path = Path(path).expanduser() if path is not None else None
        self.catalog_name = _catalog
        self.name = name or _catalog or (self.path.stem if self.path else "local")
        self.max_context = max_context
        self.default_max_tokens = default_max_tokens
        self.threads = threads or settings.threads or os.cpu_count() or 1
        self.parallel = parallel or settings.local_parallel
        self._engine: Any = None
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()  # guards _worker and _jobs

    @classmethod
    def from_catalog(cls, name: str, **kwargs: Any) -> LlamaCppModel:
        """A catalog model; its GGUF file is joined from the installed chunks on first load."""
        from llmos.llm.local.catalog import get_entry

        get_entry(name)  # unknown names fail now, not at the first request
        return cls(None, _catalog=name, **kwargs)

    # --- lifecycle ------------------------------------------------------------------

    async def load(self) -> None:
        """Load the model now instead of at the first request."""
        job = self._submit(None)
        try:
            await _next(job)
        finally:
            job.stop.set()

    async def aclose(self) -> None:
        """Stop the worker (after the answers in progress) and free the weights. Safe to call twice."""
        with self._lock:
            worker, jobs = self._worker, self._jobs
            self._worker, self._jobs = None, queue.Queue()
            if worker is not None:
                jobs.put(None)
        if worker is not None:
            await asyncio.to_thread(worker.join)

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> Any:
        """The loaded LlamaEngine, or None. Its `tokenize` and `apply_template` may be called from any
        thread; the rest belongs to the worker."""
        return self._engine

    @property
    def stats(self) -> dict[str, int]:
        """Prompt tokens computed and found in the KV cache, since the model was loaded."""
        engine = self._engine
        if engine is None:
            return {"prompt_tokens_computed": 0, "prompt_tokens_cached": 0}
        return {"prompt_tokens_computed": engine.prompt_tokens_computed, "prompt_tokens_cached": engine.prompt_tokens_cached}

    def _load_engine(self) -> Any:
        """Runs on the worker thread."""
        from llmos.llm.local.llama_engine import LlamaEngine

        try:
            import llama_cpp  # noqa: F401 - only to say what to install when it is missing
        except ImportError as exc:
            raise WeightsError(
                f"The llama.cpp engine needs llama-cpp-python ({exc}). Install it with "
                "`pip install 'llmos[llamacpp]'` (it compiles llama.cpp; `make llamacpp` builds it once and caches "
                "the wheel), or set LLMOS_LOCAL_ENGINE=transformers."
            ) from None
        path = self.path
        if path is None:
            from llmos.llm.local.catalog import prepare_gguf

            path = prepare_gguf(self.catalog_name, progress=False)
        if not path.is_file():
            raise WeightsError(f"'{path}' is not a GGUF file: the llama.cpp engine loads one model file.")
        return LlamaEngine(path, threads=self.threads, parallel=self.parallel, max_context=self.max_context)

    # --- the worker -------------------------------------------------------------------

    def _serve(self, jobs: queue.Queue[_Job | None]) -> None:
        """The worker thread: admit waiting requests into free slots, run one batch, repeat.

        The engine belongs to this thread: after aclose() a new worker loads its own.
        """
        engine: Any = None
        waiting: collections.deque[_Job] = collections.deque()
        running: dict[int, _Job] = {}  # id(sequence) -> its job
        closing = False
        try:
            while not closing or running or waiting:
                block = not running and not waiting  # wait for work only when there is nothing to compute
                while not closing:
                    try:
                        job = jobs.get(block=block)
                    except queue.Empty:
                        break
                    block = False
                    if job is None:
                        closing = True
                    else:
                        waiting.append(job)
                while waiting and (engine is None or engine.has_free_slot):
                    job = waiting.popleft()
                    if job.stop.is_set():  # cancelled while it waited
                        continue
                    try:
                        if engine is None:
                            engine = self._engine = self._load_engine()
                        if job.request is None:
                            job.send(_Done())
                            continue
                        sequence = engine.start(
                            job.request,
                            default_max_tokens=self.default_max_tokens,
                            on_text=lambda text, job=job: job.send(TextDelta(text=text)),
                            stop=job.stop,
                            prefill_only=job.prefill_only,
                        )
                    except BaseException as exc:  # noqa: BLE001 - every failure goes back to its caller
                        job.send(_Done(error=exc))
                        continue
                    running[id(sequence)] = job
                if not running:
                    continue
                try:
                    ended = engine.step()
                except BaseException as exc:  # noqa: BLE001 - a failed batch fails every request in it
                    for job in running.values():
                        job.send(_Done(error=exc))
                    running.clear()
                    engine.reset()
                    continue
                for sequence in ended:
                    job = running.pop(id(sequence))
                    if sequence.result is not None:
                        job.send(_Done(self._response(job.request, sequence.result)))
        finally:
            if engine is not None:
                if self._engine is engine:
                    self._engine = None
                engine.close()

    def _response(self, request: ChatRequest, generation: Any) -> ChatResponse:
        from llmos.llm.local import chat_format

        return ChatResponse(
            model=self.name,
            message=chat_format.answer(request, generation.text),
            usage=generation.usage,
            finish_reason=generation.finish_reason,
        )

    def _submit(self, request: ChatRequest | None, prefill_only: bool = False) -> _Job:
        job = _Job(request, asyncio.get_running_loop(), prefill_only)
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._serve, args=(self._jobs,), name=f"llmos-llamacpp-{self.name}", daemon=True
                )
                self._worker.start()
            self._jobs.put(job)
        return job

    # --- chat -------------------------------------------------------------------------

    async def prefill(self, request: ChatRequest) -> None:
        """Read the request's prompt into a slot's cache now; a later request that starts the same way
        computes only what follows (see LlamaEngine's prefix reuse)."""
        job = self._submit(request, prefill_only=True)
        try:
            while not isinstance(await _next(job), _Done):
                pass
        finally:
            job.stop.set()

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        if request.max_tokens is not None and request.max_tokens <= 0:
            raise PromptError(f"max_tokens must be at least 1, got {request.max_tokens}.")
        job = self._submit(request)
        try:
            while not isinstance(item := await _next(job), _Done):
                yield item
            yield item.value
        finally:
            # Reached on normal end, on error, and when the caller's task is cancelled or
            # drops the stream: the worker sees the flag at its next step and frees the slot.
            job.stop.set()
