"""Reading JSON and tool calls out of model text.

Open models asked for a tool call often answer with `<tool_call>` tags, a
fenced JSON block, or bare JSON instead of a native call. These parsers are
the fallback every backend shares; arguments are validated later, by the tool.

Model text is untrusted: every parser here is linear in the text, refuses JSON
nested deeper than llmos.limits.MAX_JSON_DEPTH, and takes a call only where the
model's own call syntax stands, not where it quotes a tool result or shows code.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate
from typing import Any

from llmos.errors import JSONDepthError
from llmos.limits import MAX_CALL_TEXT_CHARS, MAX_JSON_DEPTH
from llmos.llm.messages import ToolCall

_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)  # no \s* around the body: quadratic on spaces
_FENCE = re.compile(r"```([a-zA-Z_]*+)[ \t]*+(.*?)```", re.S)  # possessive: no backtracking, linear
_CALL_FENCES = ("", "json", "json5", "tool_call", "tool_code")  # other languages are code shown, never a call
_STRUCTURE = re.compile(r'[\[{]+|[\]}"]')  # runs of opening brackets in one match: "{" * 100_000 is one
_CLOSER = {"[": "]", "{": "}"}
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # the rest of a JSON string, closing quote included
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKET = re.compile(r"[][{}]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_CHUNK = 1 << 20


# --- JSON -------------------------------------------------------------------------------


def json_depth(text: str, *, stop_above: int | None = None) -> int:
    """How deep brackets nest in `text`, those inside JSON strings not counted. Linear, in bounded memory.

    With `stop_above`, the scan stops at the first chunk that nests deeper (and returns that depth).
    """
    bare = _STRING.sub("", text)  # an unterminated string stays: its brackets count, which errs on the safe side
    depth = deepest = 0
    for at in range(0, len(bare), _CHUNK):
        brackets = _BRACKET.findall(bare, at, at + _CHUNK)
        if brackets:
            levels = list(accumulate(map(_STEP.__getitem__, brackets), initial=depth))
            deepest, depth = max(deepest, max(levels)), levels[-1]
            if stop_above is not None and deepest > stop_above:
                break
    return deepest


def loads(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` for text a model wrote: JSON nested deeper than `max_depth` raises
    JSONDepthError (a ValueError) before parsing, instead of RecursionError during it."""
    if text.count("[") + text.count("{") > max_depth and (depth := json_depth(text, stop_above=max_depth)) > max_depth:
        raise JSONDepthError(
            f"the JSON nests {'' if len(text) <= _CHUNK else 'at least '}{depth} levels deep; llmos reads at "
            f"most {max_depth}. Write flatter JSON."
        )
    try:
        return json.loads(text)
    except RecursionError:  # only when the caller's own stack is already deep
        raise JSONDepthError("the JSON nests too deep to read here. Write flatter JSON.") from None


def canonical_arguments(arguments: str) -> str:
    """Arguments JSON with sorted keys, so equal calls compare equal; the text as is when it is not JSON."""
    if len(arguments) > MAX_CALL_TEXT_CHARS:
        return arguments  # refused before it runs anyway; not worth parsing
    try:
        return json.dumps(loads(arguments), sort_keys=True)
    except ValueError:
        return arguments


# An open bracket while scanning: [start, closer, depth of the spans inside, spans inside or None].
# A balanced span: (start, end, depth, spans inside or None). Lists and tuples, not classes:
# the scan handles one per bracket, and a hostile answer can hold 100,000 of them.
_Open = list
_Span = tuple[int, int, int, "list[_Span] | None"]


def _spans(text: str, end: int) -> list[_Span]:
    """The outermost balanced spans of text[:end], in one pass.

    Inside brackets a quote starts a JSON string (brackets in it do not count); outside, a
    quote is prose. Brackets that never close leave the spans inside them to their parent.
    """
    outermost: list[_Span] = []
    stack: list[_Open] = []
    search, string_rest = _STRUCTURE.search, _STRING_REST.match
    pos = 0
    while (match := search(text, pos, end)) is not None:
        token, start, pos = match.group(), match.start(), match.end()
        if token == '"':
            if stack:
                rest = string_rest(text, pos, end)
                if rest is None:
                    break  # an unterminated string: nothing after it closes
                pos = rest.end()
        elif token[0] in "[{":  # a run of opening brackets, pushed at once
            closer = _CLOSER
            stack.extend([[start + i, closer[c], 0, None] for i, c in enumerate(token)])
        else:
            while stack and stack[-1][1] != token:
                _give_up(stack, outermost)
            if stack:
                start, _, depth, inside = stack.pop()
                _add(stack, outermost, [(start, pos, depth + 1, inside)], depth + 1)
    # Never closed: each one's spans go to the one below, so in the end all go out, bottom first.
    for _, _, _, inside in stack:
        outermost.extend(inside or ())
    return outermost


def _give_up(stack: list[_Open], outermost: list[_Span]) -> None:
    """The top bracket never closes: the spans inside it belong to the one below."""
    _, _, depth, inside = stack.pop()
    # JSON would still read the lost bracket as a level: it counts for the depth.
    _add(stack, outermost, inside, depth + 1)


def _add(stack: list[_Open], outermost: list[_Span], spans: list[_Span] | None, depth: int) -> None:
    if not stack:
        outermost.extend(spans or ())
        return
    parent = stack[-1]
    if spans:
        if parent[3] is None:
            parent[3] = list(spans)
        else:
            parent[3].extend(spans)
    if depth > parent[2]:
        parent[2] = depth


def json_values(text: str, *, limit: int = MAX_CALL_TEXT_CHARS) -> Iterator[tuple[int, int, Any]]:
    """Yield (start, end, value) for each top-level JSON object or array in the first `limit` characters.

    Brackets are matched in one pass and each balanced span is parsed once; only when it is
    not JSON are the spans inside it tried. Spans nested deeper than MAX_JSON_DEPTH are
    skipped whole. So the scan is linear in the text whatever the model wrote.
    """
    yield from _parsed(text, _spans(text, min(len(text), limit)))


def _parsed(text: str, spans: list[_Span]) -> Iterator[tuple[int, int, Any]]:
    for start, end, depth, inside in spans:
        if depth > MAX_JSON_DEPTH:
            continue
        try:
            value = json.loads(text[start:end])
        except ValueError:
            yield from _parsed(text, inside or [])
            continue
        except RecursionError:  # only when the caller's own stack is already deep
            continue
        yield start, end, value


def extract_json(text: str) -> Any:
    """The JSON value a model meant to write: the whole text, a fenced block, or the first object in it."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("the answer is empty")
    too_deep: JSONDepthError | None = None
    candidates = [stripped]
    if fence := _FENCE.search(stripped):
        candidates.append(fence.group(2))
    for candidate in candidates:
        try:
            return loads(candidate)
        except JSONDepthError as exc:
            too_deep = too_deep or exc
        except ValueError:
            pass
    for _, _, value in json_values(stripped):
        return value
    if too_deep is not None:
        raise too_deep
    raise ValueError("no JSON object or array found")


# --- tool calls written as text -----------------------------------------------------------


def parse_tool_calls(
    text: str, tool_names: list[str], quoted: Sequence[str] = ()
) -> tuple[list[ToolCall], str]:
    """Find tool calls written as text. Returns the calls and the text left once they are removed.

    Only objects shaped like `{"name": <one of tool_names>, "arguments": {...}}` count
    (`parameters` is accepted for `arguments`, and arguments given as a JSON string), and
    only where the model writes a call: in `<tool_call>` tags, in a fence that is JSON or
    has no language, or as bare JSON on lines of its own. Not calls, and kept as prose:
    code in a fence of another language, JSON in the middle of a sentence, and a call that
    stands in `quoted` (the tool results the model was shown): repeating a document that
    contains a call is quoting it, not making it.
    """
    scanned, unscanned = text[:MAX_CALL_TEXT_CHARS], text[MAX_CALL_TEXT_CHARS:]
    quotes = _Quotes(quoted)
    calls: list[ToolCall] = []

    def take(block: str) -> bool:
        found = [call for _, _, value in json_values(block) for call in _as_calls(value, tool_names)]
        if not found or quotes.contain(block, found):
            return False
        calls.extend(found)
        return True

    def tags(segment: str) -> str:
        return _TAG.sub(lambda m: "" if take(m.group(1)) else m.group(0), segment)

    kept: list[str] = []
    code: list[tuple[int, int]] = []  # fences of other languages: code shown, never calls
    last = 0
    for fence in _FENCE.finditer(scanned):
        kept.append(tags(scanned[last:fence.start()]))
        if fence.group(1).lower() in _CALL_FENCES:
            kept.append("" if take(fence.group(2)) else fence.group(0))
        else:
            kept.append(fence.group(0))
            code.append(fence.span())
        last = fence.end()
    kept.append(tags(scanned[last:]))
    if calls:
        return calls, ("".join(kept) + unscanned).strip()

    kept, last, first = [], 0, None
    code_starts = [a for a, _ in code]
    for start, end, value in json_values(scanned):
        at = bisect_right(code_starts, start) - 1
        if at >= 0 and start < code[at][1]:
            continue
        first = value if first is None else first
        if not _on_own_lines(scanned, start, end):
            continue
        found = _as_calls(value, tool_names)
        if found and not quotes.contain(scanned[start:end], found):
            calls.extend(found)
            kept.append(scanned[last:start])
            last = end
    kept.append(scanned[last:])
    text = "".join(kept) + unscanned
    if not calls and (call := _lone_call(text, first, tool_names)) is not None and not quotes.contain(text, [call]):
        # A whole answer shaped like a call, to a tool that does not exist: still a call, so
        # that the agent tells the model which tools there are instead of showing JSON as prose.
        return [call], ""
    return calls, text.strip()


def _on_own_lines(text: str, start: int, end: int) -> bool:
    """True when JSON at text[start:end] is not part of a sentence: only blanks or a label ("Call:")
    before it on its line, only blanks or a full stop after it.

    Walks the blanks around it only, so checking every JSON value of a text stays linear.
    """
    before = start - 1
    while before >= 0 and text[before] in " \t":
        before -= 1
    after = end
    while after < len(text) and text[after] in " \t.,;!":
        after += 1
    return (before < 0 or text[before] in "\n:") and (after == len(text) or text[after] in "\r\n")


def _lone_call(text: str, first: Any, tool_names: list[str]) -> ToolCall | None:
    """`first` (the text's first JSON value) as a call when it is most of the text and names an unknown tool."""
    value = first
    if not (isinstance(value, dict) and set(value) == {"name", "arguments"} and isinstance(value["name"], str)):
        return None
    if value["name"] in tool_names:
        return None  # a known tool's call that the passes before did not take: code shown or quoted
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


class _Quotes:
    """The tool calls that stand in texts the model was shown (tool results), read only when asked.

    A call counts as quoted when its block's text is in one of the texts, or when a call with
    the same name and arguments is written in one, also inside a JSON string of a JSON result
    (a search tool returns documents as strings, and the model writes them out unescaped).
    """

    _NESTING = 3  # JSON strings holding JSON holding strings...: how far down to look

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = [t for t in texts if t]
        self._calls: set[tuple[str, str]] | None = None

    def contain(self, block: str, calls: list[ToolCall]) -> bool:
        if not self.texts:
            return False
        block = block.strip()
        if block and any(block in t for t in self.texts):
            return True
        if self._calls is None:
            self._calls = set()
            for t in self.texts:
                self._collect(t, self._NESTING)
        return any((c.name, canonical_arguments(c.arguments)) in self._calls for c in calls)

    def _collect(self, text: str, levels: int) -> None:
        assert self._calls is not None
        values = [value for _, _, value in json_values(text)]
        for tag in _TAG.finditer(text):
            values.extend(value for _, _, value in json_values(tag.group(1)))
        strings: list[str] = []
        todo = values
        while todo:
            value = todo.pop()
            if isinstance(value, dict):
                if isinstance(value.get("name"), str) and ("arguments" in value or "parameters" in value):
                    arguments = value.get("arguments", value.get("parameters"))
                    text_args = arguments if isinstance(arguments, str) else json.dumps(arguments)
                    self._calls.add((value["name"], canonical_arguments(text_args)))
                todo.extend(value.values())
            elif isinstance(value, list):
                todo.extend(value)
            elif isinstance(value, str) and ("{" in value or "[" in value):
                strings.append(value)
        if levels > 1:
            for string in strings:
                self._collect(string, levels - 1)


class CallTextHolder:
    """Holds back streamed text that may be a tool call written as text, so it is not shown as prose.

    Text streams through until a marker appears (a fence or `<tool_call>` anywhere, or `{`/`[`
    as the first character); from there on it is held. At the end, `flush()` gives the held
    text back when it turned out not to be a call.
    """

    _MARKERS = ("```", "<tool_call>")

    def __init__(self) -> None:
        self._pending = ""
        self._held: list[str] = []  # deltas after the marker: a list, as joining strings each time is quadratic
        self._holding = False
        self._started = False

    def feed(self, text: str) -> str:
        """Take a delta; return the part that is safe to show now."""
        if self._holding:
            self._held.append(text)
            return ""
        self._pending += text
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
        held, self._pending = self._pending + "".join(self._held), ""
        self._held = []
        return held
