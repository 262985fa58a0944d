"""A scripted OpenAI-compatible HTTP server, for tests of processes that call a model over HTTP (the CLI).

    with OpenAIStub(answer) as stub:          # answer(body) -> text, a JSON-able dict, or a Refusal
        env["LLMOS_BASE_URL"] = stub.url      # http://127.0.0.1:PORT/v1
        ...
    stub.requests                             # every chat request's JSON body, in order

It serves `POST /v1/chat/completions` (streamed as llmos asks, or whole) and `GET /v1/models`,
in a thread of the test process, on a port the OS picks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Refusal:
    """An error answer: the status and the message of an OpenAI-shaped error body."""

    status: int
    message: str


Answer = Callable[[dict[str, Any]], "str | dict[str, Any] | Refusal"]


class OpenAIStub:
    """answer(body): what to answer a chat request; a dict is sent as JSON text (structured output)."""

    def __init__(self, answer: Answer, model: str = "stub") -> None:
        self.answer = answer
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet: pytest shows failures, not access logs
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") != "/v1/models":
                    return self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                self._json(200, {"object": "list", "data": [{"id": stub.model, "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                with stub._lock:
                    stub.requests.append(body)
                answer = stub.answer(body)
                if isinstance(answer, Refusal):
                    return self._json(answer.status, {"error": {"message": answer.message, "type": "invalid_request_error"}})
                text = answer if isinstance(answer, str) else json.dumps(answer)
                usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
                if not body.get("stream"):
                    message = {"role": "assistant", "content": text}
                    return self._json(200, {
                        "id": "chatcmpl-stub", "object": "chat.completion", "model": stub.model, "usage": usage,
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    })
                chunks = [
                    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]},
                    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                    {"choices": [], "usage": usage},
                ]
                payload = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
                self._send(200, "text/event-stream", payload.encode())

            def _json(self, status: int, data: dict[str, Any]) -> None:
                self._send(status, "application/json", json.dumps(data).encode())

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
