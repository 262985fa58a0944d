"""The FastAPI app: an llmos Team or Agent behind an OpenAI-compatible API.

    from llmos.server import ServerSettings, create_app
    app = create_app(ServerSettings(), {"support": team})   # then: uvicorn, or `llmos serve`

Anything with `.stream(text, history=..., context=...)` yielding llmos events can be served
(a Team, an Agent). Each is listed by `GET /v1/models` under its id and chosen by the
request's `model`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmos.agents.events import ErrorEvent, FinalEvent, ToolResultEvent
from llmos.llm.messages import Message
from llmos.memory.conversation import Memory
from llmos.server import openai_api as oa
from llmos.server.auth import Authenticator, Identity, require_role
from llmos.server.body import read_body
from llmos.server.errors import APIError, api_error_handler, http_error_handler
from llmos.server.handoff import Handoff, operator_router
from llmos.server.health import model_ready
from llmos.server.keys import KeyStore
from llmos.server.knowledge_api import knowledge_router
from llmos.server.observability import Metrics, RequestContext
from llmos.server.ratelimit import RateLimiter
from llmos.server.sessions_api import SESSION_HEADER, Sessions
from llmos.server.settings import ServerSettings
from llmos.server.turns import TurnHub
from llmos.server.webchat import webchat_router
from llmos.tools.context import RunContext

if TYPE_CHECKING:
    from llmos.knowledge.library import KnowledgeLibrary

log = logging.getLogger("llmos.server")


class Servable(Protocol):
    """What the server can serve: a Team or an Agent."""

    name: str

    def stream(
        self, text: str, *, history: Sequence[Message] = (), context: RunContext | None = None
    ) -> AsyncIterator[Any]: ...


ReadyCheck = Callable[[], Awaitable[None]]
"""Raises (any exception, with a message saying what is down) when the server cannot answer."""


def create_app(
    settings: ServerSettings,
    served: Servable | Mapping[str, Servable],
    *,
    keys: KeyStore | None = None,
    knowledge: KnowledgeLibrary | None = None,
    ready: ReadyCheck | None = None,
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    memory: Memory | None = None,
) -> FastAPI:
    """The app serving `served` (one, listed under its name, or a mapping of id to servable).

    keys: the API key store (default: KeyStore(settings.keys_url)).
    knowledge: the tenants' uploaded documents (default: opened on first use at settings.knowledge_path);
        give the served team `knowledge.as_tool()` so that its answers come from them.
    ready: the readiness check of /readyz (default: the served models answer).
    on_shutdown: coroutines run when the server stops, after the runs in flight (e.g. closing models).
    memory: where sessions are kept (default: Memory(), opened on the first session request:
        LLMOS_MEMORY_URL, else SQLite under LLMOS_HOME).
    """
    catalog: dict[str, Servable] = dict(served) if isinstance(served, Mapping) else {served.name: served}
    keys = keys or KeyStore(settings.keys_url)
    auth = Authenticator(
        keys, RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst), open_tenant=settings.open_tenant
    )
    metrics = Metrics()
    check = ready or (lambda: model_ready(catalog.values()))
    created = int(time.time())
    hub = TurnHub(
        (lambda: memory) if memory is not None else (lambda: Memory(remember=settings.remember_facts)),
        metrics,
        run_seconds=settings.run_seconds,
        approval_seconds=settings.approval_seconds,
        replay_seconds=settings.replay_seconds,
        grace_seconds=settings.grace_seconds,
    )
    handoff = Handoff(hub, settings.handoff_tools)
    hub.observers.append(handoff.observe)
    sessions = Sessions(auth, hub, handoff, catalog, settings.max_body_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await auth.start()
        log.info("serving", extra={"fields": {"models": list(catalog)}})
        try:
            yield
        finally:
            await hub.close()  # turns in flight finish within the grace period, or are recorded as failed
            for close in on_shutdown:
                await close()
            await keys.aclose()

    app = FastAPI(title="llmos", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings, app.state.keys, app.state.auth, app.state.metrics = settings, keys, auth, metrics
    app.add_exception_handler(APIError, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-LLMOS-User", "X-Request-ID", SESSION_HEADER, "Last-Event-ID"],
            expose_headers=["X-Request-ID", "Retry-After", SESSION_HEADER, "X-LLMOS-Turn"],
        )
    app.add_middleware(RequestContext, metrics=metrics)
    app.include_router(sessions.router())
    app.include_router(operator_router(auth, hub, handoff, settings.max_body_bytes))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """The model backend answers: load balancers send traffic only when this is 200."""
        try:
            await asyncio.wait_for(check(), timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
            reason = str(exc) or type(exc).__name__
            return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics_endpoint(request: Request) -> Response:
        """Prometheus metrics: an operator key when keys are on, a loopback client otherwise."""
        identity = await auth(request)
        if auth.keys_required:
            require_role(identity, "operator")
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        await auth(request)
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": created, "owned_by": "llmos"} for name in catalog],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        identity = await auth(request)
        require_role(identity, "customer")
        body = oa.parse_request(await read_body(request, settings.max_body_bytes))
        if body.model not in catalog:
            raise APIError(
                404,
                f"The model {body.model!r} does not exist here. This server serves: {', '.join(catalog)}.",
                code="model_not_found",
                param="model",
            )
        if (session_id := request.headers.get(SESSION_HEADER)) is not None:
            return await sessions.chat_completion(identity, body, session_id)
        text, history = oa.to_llmos(body.messages)
        context = RunContext(user=identity.user, tenant=identity.tenant)
        run = _Run(catalog[body.model], text, history, context, metrics, settings.run_seconds)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                _stream_chunks(run, body.model, include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        final = await run.finish()
        return JSONResponse(oa.completion(oa.completion_id(), body.model, final.result.text, final.result.usage))

    app.include_router(knowledge_router(settings, auth, knowledge))
    app.include_router(webchat_router())
    return app


class _Run:
    """One run of a served team, with its metrics: time to first answer text, tokens, tool errors, outcome."""

    def __init__(
        self,
        served: Servable,
        text: str,
        history: list[Message],
        context: RunContext,
        metrics: Metrics,
        seconds: float,
    ) -> None:
        self.served, self.text, self.history, self.context = served, text, history, context
        self.metrics = metrics
        self.seconds = seconds
        self.answer = oa.AnswerText()
        self.started = time.perf_counter()
        self.first_token = False

    async def pieces(self) -> AsyncIterator[str | FinalEvent]:
        """Answer text as it streams, then the FinalEvent; a failed run raises an APIError."""
        outcome = "cancelled"  # until the run ends: a dropped client or a stopping server cancels it
        try:
            async with asyncio.timeout(self.seconds):
                async with aclosing(self.served.stream(self.text, history=self.history, context=self.context)) as events:
                    async for event in events:
                        if isinstance(event, ToolResultEvent) and event.is_error:
                            self.metrics.tool_errors.labels(event.name).inc()
                        if oa.is_final(event):
                            if isinstance(event, ErrorEvent):
                                outcome = "error"
                                raise oa.run_error(event)
                            assert isinstance(event, FinalEvent)
                            outcome = "ok"
                            self._count(event)
                            if rest := self.answer.rest(event.result.text):
                                yield rest
                            yield event
                            return
                        if piece := self.answer.feed(event):
                            self._first()
                            yield piece
        except TimeoutError:
            outcome = "error"
            raise APIError(
                504, f"The run took longer than {self.seconds:g} s (LLMOS_SERVER_RUN_SECONDS).", code="run_timeout"
            ) from None
        finally:
            self.metrics.runs.labels(outcome).inc()

    async def finish(self) -> FinalEvent:
        async for piece in self.pieces():
            if isinstance(piece, FinalEvent):
                return piece
        raise AssertionError("a run ended without a final event")

    def _first(self) -> None:
        if not self.first_token:
            self.first_token = True
            self.metrics.first_token.observe(time.perf_counter() - self.started)

    def _count(self, event: FinalEvent) -> None:
        self._first()
        self.metrics.tokens.labels("prompt").inc(event.result.usage.prompt_tokens)
        self.metrics.tokens.labels("completion").inc(event.result.usage.completion_tokens)


async def _stream_chunks(run: _Run, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """SSE: a role chunk, content chunks, a stop chunk, a usage chunk when asked, then [DONE].
    A failed run sends an OpenAI error object as its last data (the openai client raises it)."""
    cid = oa.completion_id()
    yield oa.sse(oa.chunk(cid, model, {"role": "assistant", "content": ""}))
    try:
        async for piece in run.pieces():
            if isinstance(piece, FinalEvent):
                yield oa.sse(oa.chunk(cid, model, {}, finish="stop"))
                if include_usage:
                    yield oa.sse(oa.usage_chunk(cid, model, piece.result.usage))
            elif piece:
                yield oa.sse(oa.chunk(cid, model, {"content": piece}))
    except APIError as exc:
        log.warning("run failed", extra={"fields": {"code": exc.code}})
        yield oa.sse(exc.body())
    yield oa.sse("[DONE]")
