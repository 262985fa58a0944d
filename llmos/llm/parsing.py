"""Reading JSON and tool calls out of model text.

Open models asked for a tool call often answer with `<tool_call>` tags, a
fenced JSON block, or bare JSON instead of a native call. These parsers are
the fallback every backend shares; arguments are validated later, by the tool.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from llmos.llm.messages import ToolCall

_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.S)
_DECODER = json.JSONDecoder()


def json_values(text: str) -> Iterator[tuple[int, int, Any]]:
    """Yield (start, end, value) for each top-level JSON object or array found in `text`."""
    pos = 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        yield start, end, value
        pos = end


def extract_json(text: str) -> Any:
    """The JSON value a model meant to write: the whole text, a fenced block, or the first object in it."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("the answer is empty")
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    fence = _FENCE.search(stripped)
    if fence:
        try:
            return json.loads(fence.group(1))
        except ValueError:
            pass
    for _, _, value in json_values(stripped):
        return value
    raise ValueError("no JSON object or array found")


def parse_tool_calls(text: str, tool_names: list[str]) -> tuple[list[ToolCall], str]:
    """Find tool calls written as text. Returns the calls and the text left once they are removed.

    Only objects shaped like `{"name": <one of tool_names>, "arguments": {...}}` count
    (`parameters` is accepted for `arguments`, and arguments given as a JSON string).
    """
    calls: list[ToolCall] = []

    def take(block: str) -> bool:
        found = [call for _, _, value in json_values(block) for call in _as_calls(value, tool_names)]
        calls.extend(found)
        return bool(found)

    text = _TAG.sub(lambda m: "" if take(m.group(1)) else m.group(0), text)
    text = _FENCE.sub(lambda m: "" if take(m.group(1)) else m.group(0), text)
    if not calls:
        kept, last = [], 0
        for start, end, value in json_values(text):
            found = _as_calls(value, tool_names)
            if found:
                calls.extend(found)
                kept.append(text[last:start])
                last = end
        kept.append(text[last:])
        text = "".join(kept)
    if not calls and (call := _lone_call(text)) is not None:
        # A whole answer shaped like a call, to a tool that does not exist: still a call, so
        # that the agent tells the model which tools there are instead of showing JSON as prose.
        return [call], ""
    return calls, text.strip()


def _lone_call(text: str) -> ToolCall | None:
    try:
        value = extract_json(text)
    except ValueError:
        return None
    if not (isinstance(value, dict) and set(value) == {"name", "arguments"} and isinstance(value["name"], str)):
        return None
    if not isinstance(value["arguments"], dict) or len(json.dumps(value)) < len(text.strip()) * 0.8:
        return None  # prose around it: not an answer that is only a call
    return ToolCall(name=value["name"], arguments=json.dumps(value["arguments"], ensure_ascii=False))


def _as_calls(value: Any, tool_names: list[str]) -> list[ToolCall]:
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict) or item.get("name") not in tool_names:
            continue
        arguments = item.get("arguments", item.get("parameters", {}))
        if isinstance(arguments, str):
            text = arguments  # keep as written: the tool reports it if it is not valid JSON
        else:
            text = json.dumps(arguments, ensure_ascii=False)
        calls.append(ToolCall(name=item["name"], arguments=text))
    return calls


class CallTextHolder:
    """Holds back streamed text that may be a tool call written as text, so it is not shown as prose.

    Text streams through until a marker appears (a fence or `<tool_call>` anywhere, or `{`/`[`
    as the first character); from there on it is held. At the end, `flush()` gives the held
    text back when it turned out not to be a call.
    """

    _MARKERS = ("```", "<tool_call>")

    def __init__(self) -> None:
        self._pending = ""
        self._holding = False
        self._started = False

    def feed(self, text: str) -> str:
        """Take a delta; return the part that is safe to show now."""
        self._pending += text
        if self._holding:
            return ""
        if not self._started:
            stripped = self._pending.lstrip()
            if not stripped:
                return ""
            self._started = True
            if stripped[0] in "{[":
                self._holding = True
                return ""
        cut = min((i for i in (self._pending.find(m) for m in self._MARKERS) if i >= 0), default=-1)
        if cut >= 0:
            self._holding = True
        else:
            # Keep a tail that could be the start of a marker split across deltas.
            cut = len(self._pending)
            for marker in self._MARKERS:
                for size in range(len(marker) - 1, 0, -1):
                    if self._pending.endswith(marker[:size]):
                        cut = min(cut, len(self._pending) - size)
                        break
        shown, self._pending = self._pending[:cut], self._pending[cut:]
        return shown

    def flush(self) -> str:
        """The text still held back."""
        held, self._pending = self._pending, ""
        return held
