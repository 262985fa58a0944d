"""Typed tools: a name, a description, a pydantic model of the arguments, and an async call.

`@tool` turns a typed Python function into a `Tool`. The agent loop calls
`Tool.run(arguments)` with the JSON text the model wrote; `run` never raises for
anything the model or the tool got wrong. It returns a `ToolResult` whose
message tells the model what went wrong and what to do, so the model can retry.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import re
import sys
import threading
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticSerializationError

from llmos.errors import ToolDefinitionError
from llmos.llm.model import ToolSpec
from llmos.llm.parsing import loads
from llmos.tools.context import RunContext, is_context_type

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-compatible servers accept
_SCHEMA_WORDS = frozenset({"required", "type", "title", "additionalProperties", "$schema"})
_ANY = TypeAdapter(Any)  # one serialiser for every return value: models, dataclasses, datetimes, plain values
_MAX_ECHO = 200  # how much of a bad argument value to quote back to the model


class ToolResult(BaseModel):
    """What a tool call produced: text for the model, and the Python value when it succeeded."""

    content: str
    """JSON text of the return value (a str return as is), or an error message for the model."""
    is_error: bool = False
    bad_arguments: bool = False
    """The call did not validate: a retry should be constrained to the tool's schema."""
    value: Any = Field(default=None, exclude=True)
    """The Python return value; never sent anywhere."""
    next_call: str | None = None
    """A tool the agent's next step must call, decided by code (an escalation rule), not left to the model."""


class Tool:
    """A tool an agent can call.

    Usually made with `@tool`; build one directly when the call is not a plain
    function: `call` receives the validated arguments model (and the RunContext when
    `takes_context`) and returns the result.
    `max_retries` is how many bad calls in a row the agent loop lets the model make.
    `requires_approval`: the call has side effects that someone must approve first (see
    RunContext.approver); the agent loop asks before running it.
    """

    def __init__(
        self,
        *,
        name: str,
        description: str,
        args_model: type[BaseModel],
        call: Callable[..., Awaitable[Any]],
        timeout_s: float | None = 30.0,
        max_retries: int = 2,
        parameters: dict[str, Any] | None = None,
        takes_context: bool = False,
        requires_approval: bool = False,
    ) -> None:
        if not _NAME.match(name):
            raise ToolDefinitionError(
                f"Tool name {name!r} is not usable: use 1-64 letters, digits, '_' or '-' (pass name=...)."
            )
        if timeout_s is not None and timeout_s <= 0:
            raise ToolDefinitionError(f"Tool '{name}': timeout must be positive or None, not {timeout_s}.")
        self.name = name
        self.description = description
        self.args_model = args_model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.takes_context = takes_context
        self.requires_approval = requires_approval
        self._call = call
        # Built once: the spec goes first in every request, so it must be byte-identical each time
        # (vLLM's prefix cache), and nothing schema-related should cost anything per call.
        try:
            schema = parameters if parameters is not None else clean_schema(args_model.model_json_schema())
        except Exception as exc:  # pydantic cannot describe one of the argument types
            raise ToolDefinitionError(f"Tool '{name}': cannot build a JSON schema of its arguments: {exc}") from exc
        self._spec = ToolSpec(name=name, description=description, parameters=schema)
        self._expected = _describe_fields(schema)

    @property
    def spec(self) -> ToolSpec:
        """What the model is told about this tool (the same object every time)."""
        return self._spec

    async def run(self, arguments: str, context: RunContext | None = None) -> ToolResult:
        """Validate the model's JSON arguments, call the tool, and return its result; never raises for bad calls.

        `context` reaches the tool when it asks for one (an empty RunContext when none is given).
        """
        try:
            args = self.args_model.model_validate_json(arguments.strip() or "{}")
        except ValidationError as exc:
            echoed = self._without_schema_words(arguments)
            try:
                if echoed is None:
                    raise exc
                args = self.args_model.model_validate(echoed)
            except ValidationError as exc:
                return ToolResult(content=self._arguments_error(exc), is_error=True, bad_arguments=True)

        timeout = asyncio.timeout(self.timeout_s)
        try:
            async with timeout:
                value = await self._invoke(args, context)
        except Exception as exc:
            if isinstance(exc, TimeoutError) and timeout.expired():
                return ToolResult(
                    content=f"Tool '{self.name}' timed out after {self.timeout_s:g}s. "
                    "Try simpler arguments, or continue without this result.",
                    is_error=True,
                )
            # The type and message help the model; a traceback would only cost tokens.
            return ToolResult(content=f"Tool '{self.name}' failed: {type(exc).__name__}: {exc}", is_error=True)

        if isinstance(value, str):
            return ToolResult(content=value, value=value)
        try:
            content = _ANY.dump_json(value).decode()
        except PydanticSerializationError:
            return ToolResult(
                content=f"Tool '{self.name}' returned a {type(value).__name__}, which cannot be turned into JSON. "
                "This is a bug in the tool, not in your call: its author should return a pydantic model, "
                "a dataclass or plain values (str, numbers, lists, dicts).",
                is_error=True,
            )
        return ToolResult(content=content, value=value)

    def _without_schema_words(self, arguments: str) -> dict[str, Any] | None:
        """The arguments less JSON-schema words copied from the tool's description (None if there are none).

        Small models often echo the schema, writing `"required": ["order_id"]` next to the
        arguments. Such a key is no argument of this tool and says nothing: dropping it is
        safer than failing a call whose real arguments are right.
        """
        try:
            parsed = loads(arguments)  # bounded depth: the model wrote this
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
        echoed = {k for k in parsed if k in _SCHEMA_WORDS and k not in self.args_model.model_fields}
        return {k: v for k, v in parsed.items() if k not in echoed} if echoed else None

    async def __call__(self, context: RunContext | None = None, /, **kwargs: Any) -> Any:
        """Call the tool directly from Python: arguments are validated (raises ValidationError), errors raise.

        `await lookup(RunContext(user="C001"), order_id="O1")` for a tool that takes the context.
        """
        return await self._invoke(self.args_model.model_validate(kwargs), context)

    def _invoke(self, args: BaseModel, context: RunContext | None) -> Awaitable[Any]:
        if self.takes_context:
            return self._call(args, context if context is not None else RunContext())  # type: ignore[call-arg]
        return self._call(args)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r})"

    def _arguments_error(self, exc: ValidationError) -> str:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            line = f"- {where}: {error['msg']}" if where else f"- {error['msg']}"
            if error["type"] not in ("missing", "json_invalid"):
                line += f" (got {_short(error['input'])})"
            problems.append(line)
        return (
            f"Invalid arguments for tool '{self.name}':\n"
            + "\n".join(problems)
            + f"\nExpected a JSON object with: {self._expected}.\nCall the tool again with corrected arguments."
        )


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = 30.0,
    max_retries: int = 2,
    requires_approval: bool = False,
) -> Any:
    """Make a `Tool` from a typed function (sync or async). Use as `@tool` or `@tool(name=..., timeout=...)`.

    The arguments model comes from the signature and type hints; the description and the
    parameter descriptions come from the docstring (Google, NumPy or reST style). A parameter
    typed `RunContext` receives the run's context and is not shown to the model.
    Sync functions run in a thread of their own so they never block the event loop.
    `requires_approval=True` for side effects (refunds, deletions, e-mails): see `Tool`.
    """

    def make(fn: Callable[..., Any], caller_locals: dict[str, Any] | None = None) -> Tool:
        # The caller's locals resolve string hints naming local classes (`from __future__ import annotations`).
        caller_locals = sys._getframe(1).f_locals if caller_locals is None else caller_locals
        tool_name = name or getattr(fn, "__name__", None)
        if not tool_name:
            raise ToolDefinitionError(f"{fn!r} has no __name__: pass name=... to tool().")
        doc = docstring_parser.parse(inspect.getdoc(fn) or "")
        docs = {p.arg_name: p.description for p in doc.params}
        args_model, call, takes_context = _args_model_and_call(fn, tool_name, docs, caller_locals)
        text = description or "\n\n".join(part for part in (doc.short_description, doc.long_description) if part)
        return Tool(
            name=tool_name,
            description=text or tool_name.replace("_", " "),
            args_model=args_model,
            call=call,
            timeout_s=timeout,
            max_retries=max_retries,
            takes_context=takes_context,
            requires_approval=requires_approval,
        )

    return make if fn is None else make(fn, sys._getframe(1).f_locals)


def as_tool(obj: Any) -> Tool:
    """A `Tool` as is, a LangChain tool through the adapter, or a typed callable through `tool()`."""
    if isinstance(obj, Tool):
        return obj
    # A LangChain tool can only exist if langchain_core is already imported, so never import it here.
    lc_tools = sys.modules.get("langchain_core.tools")
    if lc_tools is not None and isinstance(obj, lc_tools.BaseTool):
        from llmos.tools.langchain import from_langchain

        return from_langchain(obj)
    if callable(obj):
        return tool(obj)
    raise ToolDefinitionError(
        f"Cannot make a tool from {type(obj).__name__}: pass a Tool, a LangChain tool, or a typed function."
    )


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's `title` noise and put the keys models read first: type, properties, required."""
    schema = _drop_titles(schema)
    top = {"type": "object", "properties": schema.pop("properties", {}), "required": schema.pop("required", [])}
    schema.pop("type", None)
    return {**top, **schema}


# --- building the arguments model ------------------------------------------------------------


def _args_model_and_call(
    fn: Callable[..., Any], tool_name: str, docs: dict[str, str | None], localns: dict[str, Any]
) -> tuple[type[BaseModel], Callable[..., Awaitable[Any]], bool]:
    try:
        signature = inspect.signature(fn)  # a bound method's signature has no `self`
        # Only parameter hints matter: a return hint naming an unimportable type must not break the tool.
        written = {p.name: p.annotation for p in signature.parameters.values() if p.annotation is not p.empty}
        hints = typing.get_type_hints(
            types.SimpleNamespace(__annotations__=written),
            globalns=getattr(inspect.unwrap(fn), "__globals__", {}),
            localns=localns,
            include_extras=True,
        )
    except Exception as exc:  # e.g. a hint naming a type that is not defined
        raise ToolDefinitionError(f"Tool '{tool_name}': cannot read the type hints of {fn!r}: {exc}") from exc

    fields: dict[str, Any] = {}
    # Each parameter is filled from the model's arguments, or with the run context (never shown to the model).
    order: list[tuple[str, str]] = []  # (name, "positional" | "keyword" | "context")
    for param in signature.parameters.values():
        where = f"Tool '{tool_name}', parameter '{param.name}'"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"{where}: *args and **kwargs cannot be described to a model; name each argument with a type hint."
            )
        if param.name not in hints:
            raise ToolDefinitionError(f"{where} has no type hint; add one (e.g. `{param.name}: str`).")
        positional = param.kind is param.POSITIONAL_ONLY
        if is_context_type(hints[param.name]):
            order.append((param.name, "context-positional" if positional else "context"))
            continue
        if param.name.startswith("_"):
            raise ToolDefinitionError(f"{where}: names starting with '_' cannot be tool arguments; rename it.")
        fields[param.name] = _field(hints[param.name], param.default, docs.get(param.name), param.empty)
        order.append((param.name, "positional" if positional else "keyword"))
    if sum(kind.startswith("context") for _, kind in order) > 1:
        raise ToolDefinitionError(f"Tool '{tool_name}' has two RunContext parameters; keep one.")
    takes_context = any(kind.startswith("context") for _, kind in order)

    model_name = "".join(part.capitalize() for part in re.split(r"[_-]+", tool_name) if part) + "Args"
    try:
        # extra="forbid": a misspelt optional argument is reported to the model instead of silently ignored.
        args_model = create_model(model_name, __config__=ConfigDict(extra="forbid"), **fields)
    except Exception as exc:
        raise ToolDefinitionError(f"Tool '{tool_name}': cannot build its arguments model: {exc}") from exc

    def split(args: BaseModel, context: RunContext | None) -> tuple[list[Any], dict[str, Any]]:
        pos: list[Any] = []
        kw: dict[str, Any] = {}
        for name, kind in order:
            value = context if kind.startswith("context") else getattr(args, name)
            if kind in ("positional", "context-positional"):
                pos.append(value)
            else:
                kw[name] = value
        return pos, kw

    if _is_async(fn):

        async def call(args: BaseModel, context: RunContext | None = None) -> Any:
            pos, kw = split(args, context)
            return await fn(*pos, **kw)

    else:

        async def call(args: BaseModel, context: RunContext | None = None) -> Any:
            pos, kw = split(args, context)
            return await in_own_thread(fn, *pos, **kw)

    return args_model, call, takes_context


async def in_own_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call in a new daemon thread and await its result.

    Not the shared executor of `asyncio.to_thread`: a call that hangs past its timeout keeps
    its thread (threads cannot be killed), and a few hung calls would fill that pool and
    starve every other tool. Here a hung call holds only its own thread.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if future.done():  # the awaiting side timed out or was cancelled
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def work() -> None:
        try:
            result = context.run(fn, *args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome = (False, exc)
        else:
            outcome = (True, result)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop closed while this call hung: nobody waits for it any more

    threading.Thread(target=work, name=f"llmos-tool-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    return await future


def _field(hint: Any, default: Any, doc: str | None, empty: Any) -> tuple[Any, Any]:
    """(type, default) of one parameter; a description given with Annotated or Field() wins over the docstring."""
    given = [default] if isinstance(default, FieldInfo) else []
    given += [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, FieldInfo)]
    if doc and not any(info.description for info in given):
        hint = Annotated[hint, Field(description=doc)]
    return hint, (... if default is empty else default)


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


# --- schema and message helpers ---------------------------------------------------------------


def _drop_titles(schema: Any) -> Any:
    """Remove `title` keywords at every level, but keep a property that happens to be called 'title'."""
    if isinstance(schema, list):
        return [_drop_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "definitions", "patternProperties"):
            out[key] = {name: _drop_titles(sub) for name, sub in value.items()}
        elif key in ("default", "enum", "const", "examples"):
            out[key] = value  # data, not schema: a 'title' key in there is real
        else:
            out[key] = _drop_titles(value)
    return out


def _describe_fields(schema: dict[str, Any]) -> str:
    """`a (integer, required), unit (string, default 'C')`: the summary quoted in argument errors."""
    required = set(schema.get("required", []))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        kind = _kind(prop)
        if name in required:
            parts.append(f"{name} ({kind}, required)")
        elif "default" in prop:
            parts.append(f"{name} ({kind}, default {prop['default']!r})")
        else:
            parts.append(f"{name} ({kind}, optional)")
    return ", ".join(parts) or "no arguments ({})"


def _kind(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "one of " + ", ".join(map(repr, prop["enum"]))
    if "type" in prop:
        return prop["type"] if isinstance(prop["type"], str) else " or ".join(prop["type"])
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1] + " object"
    if "anyOf" in prop:
        return " or ".join(_kind(option) for option in prop["anyOf"])
    return "value"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_ECHO else text[:_MAX_ECHO] + "..."
