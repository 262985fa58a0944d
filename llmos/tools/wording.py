"""Reword a tool: the same call under other words (its description, its arguments' names and help).

    ticket = reworded(tools["create_ticket"], rename={"reference": "order_id"},
                      arguments={"order_id": "The order concerned, if any."})

A reusable tool is written with neutral words; a company gives it the words its customers
and its model know ("order_id" rather than "reference"). What the model reads is the
tool's spec, so this is how a company's wording reaches it, byte for byte.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from llmos.errors import ToolDefinitionError
from llmos.tools.base import Tool, clean_schema
from llmos.tools.context import RunContext


def reworded(
    tool: Tool,
    *,
    name: str | None = None,
    description: str | None = None,
    arguments: dict[str, str] | None = None,
    rename: dict[str, str] | None = None,
) -> Tool:
    """A copy of `tool` with a new name, description, argument names (old -> new) and argument help (by new name)."""
    rename = rename or {}
    fields = tool.args_model.model_fields
    for old in rename:
        if old not in fields:
            raise ToolDefinitionError(f"Tool '{tool.name}' has no argument '{old}' to rename; it has {', '.join(fields)}.")
    args_model, call = tool.args_model, tool._call
    if rename:
        back = {rename.get(n, n): n for n in fields}
        args_model = create_model(
            args_model.__name__,
            __config__=ConfigDict(extra="forbid"),
            **{rename.get(n, n): (info.annotation, copy.copy(info)) for n, info in fields.items()},
        )
        original_model, original_call = tool.args_model, tool._call

        async def call(args: BaseModel, context: RunContext | None = None) -> Any:
            # model_construct: the values were validated under the new names, with the same types.
            original = original_model.model_construct(**{back[k]: v for k, v in args.__dict__.items()})
            return await (original_call(original, context) if tool.takes_context else original_call(original))

    schema = clean_schema(args_model.model_json_schema()) if rename else copy.deepcopy(tool.spec.parameters)
    for arg, text in (arguments or {}).items():
        if arg not in schema["properties"]:
            raise ToolDefinitionError(f"Tool '{tool.name}' has no argument '{arg}' to describe; it has {', '.join(schema['properties'])}.")
        schema["properties"][arg]["description"] = text
    return Tool(
        name=name or tool.name,
        description=description if description is not None else tool.description,
        args_model=args_model,
        call=call,
        timeout_s=tool.timeout_s,
        max_retries=tool.max_retries,
        parameters=schema,
        takes_context=tool.takes_context,
        requires_approval=tool.requires_approval,
    )
