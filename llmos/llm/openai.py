"""OpenAIModel: any server that speaks the OpenAI chat-completions API (vLLM first).

Every request is streamed, also a forced tool call or an output schema: the
read timeout then bounds the gap between two pieces of the answer rather than
the whole answer (a slow CPU server writing 1000 tokens of JSON would
otherwise trip it), closing the connection stops generation on the server,
and there is one parser. For machine-read answers (forced call, output
schema) no TextDelta is yielded: that text is JSON, not something to show.

The request body is built deterministically with the model, the tools and the
messages first, so the bytes of the system prompt and tool schemas are the
same in every turn of a conversation and vLLM's prefix cache can hit.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx

from llmos.errors import ModelConnectionError, ModelError, ModelNotFoundError, PromptError
from llmos.llm.messages import AssistantMessage, Message, SystemMessage, ToolCall, ToolMessage, UserMessage
from llmos.llm.model import ChatModel, ChatRequest, ChatResponse, TextDelta, Usage

DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)
RETRY_BASE_S = 0.5  # first backoff window; doubles each attempt
RETRY_CAP_S = 8.0  # longest backoff window
RETRY_AFTER_CAP_S = 30.0  # longest Retry-After honoured: a caller is waiting
DEFAULT_RETRY_BUDGET_S = 180.0  # one request, all attempts and waits together

_FINISH: dict[str, Literal["stop", "length", "tool_calls"]] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}

# Test seam: tests replace this to run retries without waiting.
_sleep = asyncio.sleep


class OpenAIModel(ChatModel):
    """A model served over the OpenAI chat-completions API.

    `base_url` is the API root, e.g. `http://127.0.0.1:8011/v1`. Pass `client` to share
    an httpx.AsyncClient (or a MockTransport in tests); one made here is closed by `aclose`.
    A request is tried at most `max_retries + 1` times, all within `retry_budget_s` seconds
    (each attempt's timeouts are cut to what is left), so a silent server fails in bounded time.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = model
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.retry_budget_s = retry_budget_s
        self._owns_client = client is None
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._headers = headers
        # A client passed in keeps its own timeouts.
        self.client = client or httpx.AsyncClient(timeout=timeout)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def shown_url(self) -> str:
        """The chat URL as error messages show it: without a `user:password@` part."""
        return without_credentials(self.url)

    # --- wire format ----------------------------------------------------------------

    def request_body(self, request: ChatRequest, *, stream: bool = True) -> bytes:
        """The JSON body for `request`. Model, tools and messages come first, in a fixed order."""
        body: dict[str, Any] = {"model": self.name}
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
        body["messages"] = [_message_dict(m) for m in request.messages]
        # Everything below may change from turn to turn, so it comes after the stable prefix.
        if request.tools:
            body["tool_choice"] = _tool_choice(request.tool_choice)
        if request.output_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _schema_name(request.output_schema.name),
                    "schema": request.output_schema.json_schema,
                    "strict": True,
                },
            }
        body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        # No sort_keys: it would reorder tool parameters, which the model reads in order.
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    # --- the call ---------------------------------------------------------------------

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | ChatResponse]:
        if request.max_tokens is not None and request.max_tokens <= 0:
            raise PromptError(f"max_tokens must be at least 1, got {request.max_tokens}.")
        show_text = not request.forced_tool and request.output_schema is None
        response = await self._open(self.request_body(request))
        answer = _Answer()
        try:
            async for data in _sse_data(response):
                if data == "[DONE]":
                    break
                text = answer.add(_decode_chunk(data, self.shown_url))
                if text and show_text:
                    yield TextDelta(text=text)
        except httpx.TransportError as exc:
            # Not retried: deltas may already be out, and a second answer would repeat them.
            raise ModelConnectionError(
                f"The connection to {self.shown_url} broke in the middle of an answer ({type(exc).__name__}: {exc})."
            ) from exc
        finally:
            # Also runs on cancellation: closing the response drops the connection, which stops the server.
            await response.aclose()
        yield answer.response(self.name)

    async def _open(self, body: bytes) -> httpx.Response:
        """POST the request and return the open 200 response; retry what a retry can fix, within the budget."""
        deadline = time.monotonic() + self.retry_budget_s
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                request = self.client.build_request(
                    "POST", self.url, content=body, headers=self._headers, timeout=self._timeout_within(deadline)
                )
                response = await self.client.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt > self.max_retries or time.monotonic() >= deadline:
                    raise self._unreachable(exc, attempt) from exc
            else:
                if response.status_code == 200:
                    return response
                await response.aread()
                await response.aclose()
                if not _retryable(response.status_code) or attempt > self.max_retries:
                    raise await self._error_for(response, attempt)
                retry_after = _retry_after(response)
            window = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (attempt - 1))
            wait = retry_after if retry_after is not None else random.uniform(0, window)  # full jitter
            if time.monotonic() + wait >= deadline:
                raise ModelConnectionError(
                    f"{self.shown_url} did not give an answer within {self.retry_budget_s:g} s over {attempt} attempts. "
                    "The server may be overloaded or down; raise LLMOS_RETRY_BUDGET, or try again later."
                )
            await _sleep(wait)

    def _timeout_within(self, deadline: float) -> httpx.Timeout:
        """The client's timeouts, none longer than what is left of the request's budget."""
        left = max(0.001, deadline - time.monotonic())
        t = self.client.timeout
        return httpx.Timeout(
            connect=_at_most(t.connect, left), read=_at_most(t.read, left), write=_at_most(t.write, left),
            pool=_at_most(t.pool, left),
        )

    # --- errors -----------------------------------------------------------------------

    def _unreachable(self, exc: httpx.TransportError, attempts: int) -> ModelConnectionError:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return ModelConnectionError(
                f"{self.shown_url} did not answer in time ({type(exc).__name__}) after {attempts} attempts: "
                "the server may be overloaded; raise LLMOS_READ_TIMEOUT or try again."
            )
        return ModelConnectionError(
            f"could not reach {self.shown_url}: is the server running? start one with `llmos serve-model` "
            f"({type(exc).__name__}: {exc or 'no details'})."
        )

    async def _error_for(self, response: httpx.Response, attempts: int) -> ModelError:
        status = response.status_code
        message = _server_message(response)
        if status in (401, 403):
            return ModelError(
                f"{self.shown_url} refused the request ({status}: {message}): set LLMOS_API_KEY to a key the server accepts."
            )
        if _about_missing_model(status, message, self.name):
            return ModelNotFoundError(
                f"The server at {without_credentials(self.base_url)} has no model '{self.name}' ({message}). "
                f"{await self._models_hint()}"
            )
        if status == 404:
            return ModelError(
                f"No chat endpoint at {self.shown_url} (404: {message}): the base URL usually ends in /v1."
            )
        if status == 400 and "context length" in message.lower():
            return PromptError(f"The prompt is too long for '{self.name}': {message}")
        if _retryable(status):
            return ModelError(f"{self.shown_url} answered {status} after {attempts} attempts: {message}")
        return ModelError(f"{self.shown_url} refused the request ({status}): {message}")

    async def _models_hint(self) -> str:
        """Name the models the server does serve, when it says."""
        try:
            response = await self.client.get(f"{self.base_url}/models", headers=self._headers)
            response.raise_for_status()
            names = [str(m["id"]) for m in response.json()["data"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return "The server did not list its models (GET /models failed)."
        if not names:
            return "The server lists no models."
        return f"It serves: {', '.join(names)}. Use one of these names (e.g. LLMOS_MODEL={names[0]})."

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()


# --- helpers ------------------------------------------------------------------------------


def _message_dict(message: Message) -> dict[str, Any]:
    if isinstance(message, (SystemMessage, UserMessage)):
        return {"role": message.role, "content": message.content}
    if isinstance(message, AssistantMessage):
        out: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]
        elif out["content"] is None:
            out["content"] = ""  # some servers refuse an assistant message with neither
        return out
    if isinstance(message, ToolMessage):
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    raise TypeError(f"not a chat message: {message!r}")


def _tool_choice(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _schema_name(name: str) -> str:
    # OpenAI allows [a-zA-Z0-9_-]{1,64} here; a pydantic name like `list[int]` is not.
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "output"


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The `data:` payloads of a server-sent-events stream (one JSON chunk each)."""
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            yield line[5:].strip()


def _decode_chunk(data: str, url: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise ModelError(f"{url} sent a stream chunk that is not JSON: {data[:200]!r}") from None
    if not isinstance(chunk, dict):
        raise ModelError(f"{url} sent an unexpected stream chunk: {data[:200]!r}")
    if "error" in chunk:  # vLLM reports errors found after the stream started this way
        error = chunk["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise ModelError(f"{url} failed mid-answer: {message}")
    return chunk


class _Answer:
    """Collects stream chunks: text, tool-call fragments by index, usage, finish reason."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage = Usage()
        self.finish: Literal["stop", "length", "tool_calls"] = "stop"

    def add(self, chunk: dict[str, Any]) -> str:
        """Take one chunk; return its new text."""
        if chunk.get("usage"):
            self.usage = Usage(
                prompt_tokens=chunk["usage"].get("prompt_tokens") or 0,
                completion_tokens=chunk["usage"].get("completion_tokens") or 0,
            )
        text = ""
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                text += delta["content"]
            for position, fragment in enumerate(delta.get("tool_calls") or []):
                call = self.calls.setdefault(fragment.get("index", position), {"id": None, "name": "", "args": []})
                call["id"] = call["id"] or fragment.get("id")
                function = fragment.get("function") or {}
                call["name"] += function.get("name") or ""
                call["args"].append(function.get("arguments") or "")
            if choice.get("finish_reason"):
                self.finish = _FINISH.get(choice["finish_reason"], "stop")
        self.text.append(text)
        return text

    def response(self, model: str) -> ChatResponse:
        calls = []
        for _, call in sorted(self.calls.items()):
            fields = {"name": call["name"], "arguments": "".join(call["args"]) or "{}"}
            calls.append(ToolCall(id=call["id"], **fields) if call["id"] else ToolCall(**fields))
        message = AssistantMessage(content="".join(self.text) or None, tool_calls=calls)
        return ChatResponse(model=model, message=message, usage=self.usage, finish_reason=self.finish)


def _at_most(value: float | None, limit: float) -> float:
    return limit if value is None else min(value, limit)


def _retryable(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (a number or an HTTP date), capped; None if it did not say."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def _server_message(response: httpx.Response) -> str:
    """The error message in a server's answer: OpenAI's {"error": {"message"}} or a close variant."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500].strip() or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if error.get(key):
                    return str(error[key])
        elif error:
            return str(error)
    return json.dumps(data)[:500]


def _about_missing_model(status: int, message: str, model: str) -> bool:
    text = message.lower()
    if status == 404:
        return model.lower() in text or "model" in text
    # Some servers answer 400 for an unknown model; "model" alone is not enough (context-length errors say it).
    return status == 400 and "model" in text and ("does not exist" in text or "not found" in text)


def without_credentials(url: str) -> str:
    """`url` with any `user:password@` replaced by `***@`, so that it can be printed or logged."""
    try:
        parsed = httpx.URL(url)
    except Exception:  # noqa: BLE001 - not a URL: show nothing of it that could hold a secret
        return "<invalid URL>"
    if not parsed.userinfo:
        return url
    return str(parsed.copy_with(username=None, password=None)).replace("://", "://***@", 1)
