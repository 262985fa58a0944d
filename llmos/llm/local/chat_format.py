"""What every in-process engine shares about a request: its prompt, its constraint, its answer.

Both engines (transformers and llama.cpp) render the same chat template over the
same message dicts, constrain a forced call or an output schema with the same
JSON schema, and read the finished text back the same way; so a request gives
the same prompt, token for token, whichever engine runs it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from llmos.llm.messages import AssistantMessage, Message, SystemMessage, ToolCall, ToolMessage, UserMessage
from llmos.llm.model import ChatRequest
from llmos.llm.parsing import loads

OUTPUT_INSTRUCTION = (
    "Answer with one JSON object and nothing else. It must match this JSON schema:\n{schema}"
)
"""Appended to the system message when the request has an output schema (byte-stable for a given schema)."""

TOOL_CALL_OPEN = "<tool_call>"
"""How the Qwen chat template opens a tool call (one token in its vocabulary)."""

TOOL_CALL_PREFIX = TOOL_CALL_OPEN + "\n"
"""A forced call starts the answer with this."""

ApplyTemplate = Callable[[list[dict[str, Any]], "list[dict[str, Any]] | None"], str]
"""Renders (messages, tools) with the model's chat template, the generation prompt added."""


def render(request: ChatRequest, apply_template: ApplyTemplate) -> str:
    """The prompt text: chat template over the messages and tools, plus what constraining needs."""
    messages = [_template_message(m) for m in request.messages]
    if request.output_schema is not None:
        schema = json.dumps(request.output_schema.json_schema, ensure_ascii=False)
        instruction = OUTPUT_INSTRUCTION.format(schema=schema)
        if messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": messages[0]["content"] + "\n\n" + instruction}
        else:
            messages.insert(0, {"role": "system", "content": instruction})
    # Tools are listed even when none may be called (tool_choice "none": the engines then keep
    # the answer to words), so that the prompt's prefix, and its KV cache, match the run's earlier steps.
    tools = None
    if request.tools:
        tools = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in request.tools
        ]
    prompt = apply_template(messages, tools)
    if request.forced_tool:
        prompt += TOOL_CALL_PREFIX
    return prompt


def constraint_schema(request: ChatRequest) -> dict[str, Any] | None:
    """The JSON schema the answer must follow while decoding, or None for free text."""
    if request.output_schema is not None:
        return request.output_schema.json_schema
    if not request.forced_tool:
        return None
    tools = [t for t in request.tools if request.tool_choice in ("required", t.name)]
    options = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": _every_parameter(t.parameters)},
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def may_call_freely(request: ChatRequest) -> bool:
    """True when the model chooses in free text whether, and which tools, to call (tool_choice "auto")."""
    return bool(request.tools) and request.tool_choice == "auto" and request.output_schema is None


def before_repeated_call(text: str) -> str | None:
    """The answer cut before a tool call it writes a second time, or None when its last line is no such copy.

    Small models write one call over and over until the token limit. The agent runs a call
    once whatever the number of copies, so the answer can end at the first copy: the tokens
    after it would cost seconds each and change nothing. Calls are one JSON object per line,
    as the chat template asks; the text after the last newline is still being written and is not read.
    """
    lines = text.split("\n")[:-1]
    if len(lines) < 2:
        return None
    last = lines[-1].strip()
    if not last.startswith("{") or last not in (line.strip() for line in lines[:-1]):
        return None
    kept = lines[:-1]
    if kept and kept[-1].strip() == TOOL_CALL_OPEN:  # the copy's opening tag goes with it
        kept.pop()
    return "\n".join(kept).rstrip()


def answer(request: ChatRequest, text: str) -> AssistantMessage:
    """The assistant message for a finished generation: a native tool call when one was forced."""
    if request.forced_tool and request.output_schema is None:
        try:
            data = loads(text)
        except ValueError:  # cut off by max_tokens: let the base class report it
            return AssistantMessage(content=text)
        arguments = json.dumps(data["arguments"], ensure_ascii=False)
        return AssistantMessage(tool_calls=[ToolCall(name=data["name"], arguments=arguments)])
    return AssistantMessage(content=text)


def jinja_template(source: str) -> ApplyTemplate:
    """A chat template (Jinja text, as stored in a GGUF file) rendered the way transformers renders it.

    Same sandbox, same options (trim_blocks, lstrip_blocks, loop controls) and the same
    `tojson` (no HTML escaping, non-ASCII kept), so the prompt matches the transformers
    engine's byte for byte; a model test checks that on the real template.
    """
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def raise_exception(message: str) -> None:
        from jinja2.exceptions import TemplateError

        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    template = env.from_string(source)

    def apply(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
        return template.render(messages=messages, tools=tools, add_generation_prompt=True)

    return apply


def _template_message(message: Message) -> dict[str, Any]:
    """One llmos message in the shape Qwen-style chat templates read."""
    if isinstance(message, AssistantMessage):
        out: dict[str, Any] = {"role": "assistant", "content": message.content or ""}
        if message.tool_calls:
            out["tool_calls"] = [
                {"type": "function", "function": {"name": c.name, "arguments": _arguments(c.arguments)}}
                for c in message.tool_calls
            ]
        return out
    if isinstance(message, ToolMessage):
        return {"role": "tool", "content": message.content}
    assert isinstance(message, (SystemMessage, UserMessage))
    return {"role": message.role, "content": message.content}


def _arguments(text: str) -> Any:
    """Templates render arguments with `tojson`: pass a dict, or the text as written if it is not JSON."""
    try:
        return loads(text)
    except ValueError:  # not JSON, or too deep to render
        return text


def _every_parameter(parameters: dict[str, Any]) -> dict[str, Any]:
    """The schema with every parameter required, for a forced call's grammar.

    When all parameters are optional, a small model under a grammar takes the shortest
    way out, `{}`, and the tool has nothing to go on. Made to write each one (null where
    the tool allows it), it fills in what the request says.
    """
    properties = parameters.get("properties")
    if not properties:
        return parameters
    return {**parameters, "required": list(properties)}
