"""Operations: Prometheus metrics, structured (JSON) logs, and a request id on every request.

Metrics live in the app's own registry (two apps in one process do not mix counts). With
several workers each process counts its own requests; scrape each worker, or run one per
container behind the load balancer.

Log lines are JSON with the request id, method, route, status, duration, tenant and key id.
Never logged: the Authorization header, key secrets, message text.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmos_request_id", default=None)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
log = logging.getLogger("llmos.server")



def _with_request_id(record: logging.LogRecord) -> bool:
    """Stamp the record with the request being served when it is made (the log call's context)."""
    record.request_id = request_id.get()
    return True


log.addFilter(_with_request_id)

_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The server's Prometheus metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "llmos_http_requests", "HTTP requests by route and status.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "llmos_http_request_seconds", "Time to the end of the response.", ["route"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.first_token = Histogram(
            "llmos_time_to_first_token_seconds", "Time from the request to the first answer text.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.tokens = Counter("llmos_tokens", "Model tokens used by runs.", ["kind"], registry=r)
        self.runs = Counter("llmos_runs", "Runs by outcome: ok, error, cancelled.", ["outcome"], registry=r)
        self.tool_errors = Counter("llmos_tool_errors", "Tool calls that returned an error.", ["tool"], registry=r)
        self.rate_limited = Counter("llmos_rate_limited", "Requests refused by a rate limit.", registry=r)


class RequestContext:
    """ASGI middleware: a request id (the client's X-Request-ID when it is sane, else a new one),
    echoed in the response; one JSON log line and the HTTP metrics per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        rid = given if _SAFE_ID.match(given) else "req_" + uuid.uuid4().hex[:16]
        token = request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.lower().encode(), rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(seconds)
            if status == 429:
                self.metrics.rate_limited.inc()
            identity = scope["state"].get("identity")
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(seconds * 1000, 1),
                        "tenant": getattr(identity, "tenant", None),
                        "key_id": getattr(identity, "key_id", None),
                    }
                },
            )
            request_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request id, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (rid := getattr(record, "request_id", None)) is not None:
            line["request_id"] = rid
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str = "info") -> None:
    """JSON lines on stderr for llmos.server (uvicorn keeps its own startup lines)."""
    logger = logging.getLogger("llmos.server")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = True
